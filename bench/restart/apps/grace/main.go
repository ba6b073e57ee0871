// Hello server for bench/restart_bench.ts on facebookgo/grace (gracehttp):
// restarts (re-executes itself with the listener) on SIGUSR2, drains and
// exits on SIGTERM.
//
//	grace-hello -listen 127.0.0.1:8080 [-tag MARKER]
//
// Routes: / answers "Hello!", /pid the serving pid, /sleep?ms=N sleeps N ms.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/facebookgo/grace/gracehttp"
)

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		fmt.Fprint(w, "Hello!\n")
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		fmt.Fprintf(w, "%d\n", os.Getpid())
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			ms = 10000
		}
		pid := os.Getpid()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d ms in pid %d\n", ms, pid)
	})
	return mux
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.String("tag", "", "ignored; lets the bench find every generation")
	flag.Parse()
	err := gracehttp.Serve(&http.Server{Addr: *listen, Handler: routes()})
	if err != nil {
		log.Fatalln("grace-hello:", err)
	}
}
