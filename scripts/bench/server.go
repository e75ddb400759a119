// server.go: a minimal HTTP/1.1 server for the connscope benchmark capture.
//
// Standard library only, so `go build` needs no network. It answers every
// request with a fixed body of BODY_BYTES bytes (default 4096): big enough that
// responses span several loopback segments, like a real page, small enough
// that the capture stays a few GB. Keep-alive is the net/http default; a client
// sending `Connection: close` gets the server closing first (FIN from server).
//
// Usage: server ADDR   (e.g. 127.0.0.1:18087). Stop it with SIGTERM/SIGINT.
package main

import (
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: server ADDR")
	}
	size := 4096
	if s := os.Getenv("BODY_BYTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			log.Fatalf("bad BODY_BYTES %q", s)
		}
		size = n
	}
	body := []byte(strings.Repeat("x", size))
	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(os.Args[1], handler))
}
