// Hello server for bench/restart_bench.ts under pm2 in cluster mode: plain
// node:http on HOST:PORT (from the environment). On SIGINT, which `pm2 reload`
// sends to the old worker once the new one listens, it stops accepting and
// exits when its connections have closed (pm2's usual graceful pattern).
//
// Routes: / answers "Hello!", /pid the serving pid, /sleep?ms=N sleeps N ms.
"use strict";

const http = require("node:http");

const server = http.createServer((request, response) => {
  const url = new URL(request.url, "http://localhost");
  response.setHeader("Content-Type", "text/plain;charset=UTF-8");
  if (url.pathname === "/") {
    response.end("Hello!\n");
  } else if (url.pathname === "/pid") {
    response.end(`${process.pid}\n`);
  } else if (url.pathname === "/sleep") {
    const ms = Number(url.searchParams.get("ms") ?? "10000");
    const pid = process.pid;
    setTimeout(() => response.end(`slept ${ms} ms in pid ${pid}\n`), ms);
  } else {
    response.statusCode = 404;
    response.end("Not Found\n");
  }
});

server.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");

process.on("SIGINT", () => {
  server.close((error) => process.exit(error ? 1 : 0));
});
