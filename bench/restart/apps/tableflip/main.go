// Hello server for bench/restart_bench.ts on cloudflare/tableflip: upgrades
// (re-executes itself, handing the listener over) on SIGHUP, stops on SIGTERM.
//
//	tableflip-hello -listen 127.0.0.1:8080 [-tag MARKER]
//
// Routes: / answers "Hello!", /pid the serving pid, /sleep?ms=N sleeps N ms.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
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
	log.SetPrefix(fmt.Sprintf("tableflip-hello[%d] ", os.Getpid()))

	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		log.Fatalln("tableflip:", err)
	}
	defer upg.Stop()

	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		for sig := range signals {
			if sig != syscall.SIGHUP {
				upg.Stop()
				return
			}
			if err := upg.Upgrade(); err != nil {
				log.Println("upgrade failed:", err)
			}
		}
	}()

	ln, err := upg.Listen("tcp", *listen)
	if err != nil {
		log.Fatalln("listen:", err)
	}
	server := &http.Server{Handler: routes()}
	go func() {
		if err := server.Serve(ln); err != http.ErrServerClosed {
			log.Println("serve:", err)
		}
	}()
	if err := upg.Ready(); err != nil {
		log.Fatalln("ready:", err)
	}
	log.Println("serving on", ln.Addr())
	<-upg.Exit()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.Println("shutdown:", err)
	}
}
