// client.go: the lab's Go net/http client (stdlib only). One program, the knobs of the seed notes:
//
//	-client shared|new   one http.Client for all requests, or a new one per request (seed 000 op1)
//	-transport default|own
//	                     default: the client uses http.DefaultTransport, as `http.Client{}` does in
//	                     seed 000, so a "new client" still shares one connection pool;
//	                     own: the client gets its own http.Transport (seeds 001-004), so a "new client"
//	                     also means a new, empty pool
//	-read none|partial|all   read nothing, 5 of the 11 bytes, or to EOF (seed 000 op2)
//	-close               call resp.Body.Close() (seed 000 op3)
//	-max-idle-per-host   Transport.MaxIdleConnsPerHost (seeds 001, 004)
//	-disable-keepalives  Transport.DisableKeepAlives (seed 002)
//	-tcp-keepalive       net.Dialer.KeepAlive: TCP keep-alive idle time and probe interval (seed 003)
//	-idle, -close-idle   after the last request, keep the pool idle this long, then
//	                     Transport.CloseIdleConnections() (seed 003)
//	-post                POST a small JSON body instead of GET (seeds 002, 004)
//	-tls-insecure        accept the lab server's self-signed certificate (seed 004); with
//	                     SSLKEYLOGFILE set (connscope capture sets it), the TLS secrets go there
//	-delay               sleep after the response headers, before touching the body: lets a server
//	                     that closes first do so before the client can, so the FIN side is not a race
//	-hold                after "done", keep the process (and every socket it still has) alive this
//	                     long: a Go process that exits closes its sockets, and the lab wants the
//	                     end states a netstat would show while the program still runs
//
// Prints "done requests=N errors=E" on stdout when the requests (and the idle period) are over.
package main

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

type options struct {
	transport      string
	maxIdlePerHost int
	disableKA      bool
	tlsInsecure    bool
	tcpKeepAlive   time.Duration
}

// newClient returns a client and the transport whose idle connections it pools.
func newClient(o options) (*http.Client, *http.Transport) {
	if o.transport == "default" {
		return &http.Client{}, http.DefaultTransport.(*http.Transport)
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: o.tcpKeepAlive}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: o.maxIdlePerHost,
		DisableKeepAlives:   o.disableKA,
	}
	if o.tlsInsecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		// The three lines a Go program adds so that connscope (or Wireshark) can decrypt its HTTPS:
		// `connscope capture -- PROGRAM` sets SSLKEYLOGFILE for it.
		if path := os.Getenv("SSLKEYLOGFILE"); path != "" {
			if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				tr.TLSClientConfig.KeyLogWriter = f
			}
		}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

func main() {
	url := flag.String("url", "http://127.0.0.1:9000/hello", "URL")
	n := flag.Int("n", 5, "number of requests (at most 100)")
	clientMode := flag.String("client", "shared", "shared | new (a new http.Client per request)")
	var o options
	flag.StringVar(&o.transport, "transport", "default", "default | own")
	read := flag.String("read", "all", "none | partial | all")
	doClose := flag.Bool("close", false, "call resp.Body.Close()")
	flag.IntVar(&o.maxIdlePerHost, "max-idle-per-host", 0, "Transport.MaxIdleConnsPerHost (own transport)")
	flag.BoolVar(&o.disableKA, "disable-keepalives", false, "Transport.DisableKeepAlives (own transport)")
	flag.BoolVar(&o.tlsInsecure, "tls-insecure", false, "accept a self-signed certificate (own transport)")
	flag.DurationVar(&o.tcpKeepAlive, "tcp-keepalive", 0, "net.Dialer.KeepAlive (own transport; 0 = Go's 15s)")
	post := flag.Bool("post", false, "POST a small JSON body instead of GET")
	delay := flag.Duration("delay", 0, "sleep after the response headers, before reading or closing the body")
	idle := flag.Duration("idle", 0, "after the last request, leave the pool idle this long")
	closeIdle := flag.Bool("close-idle", false, "then call CloseIdleConnections() on every transport used")
	hold := flag.Duration("hold", 0, "after printing done, stay alive this long (sockets stay open)")
	flag.Parse()
	if *n < 0 || *n > 100 || *hold > time.Minute || *idle > time.Minute {
		log.Fatal("-n at most 100, -hold and -idle at most 1m")
	}

	var transports []*http.Transport
	var kept []*http.Response // responses never closed stay referenced, as a leaking program's would
	var c *http.Client
	errors := 0
	for i := 0; i < *n; i++ {
		if c == nil || *clientMode == "new" {
			var tr *http.Transport
			c, tr = newClient(o)
			transports = append(transports, tr)
		}
		var resp *http.Response
		var err error
		if *post {
			resp, err = c.Post(*url, "application/json", bytes.NewBufferString(`{"event":"lab"}`))
		} else {
			resp, err = c.Get(*url)
		}
		if err != nil { // seed 000 just continued; the lab counts it so the runner can flag it
			log.Printf("request %d: %v", i+1, err)
			errors++
			continue
		}
		time.Sleep(*delay)
		switch *read {
		case "none":
		case "partial": // 5 of the 11 bytes, like seed 000
			b := make([]byte, 5)
			k, err := resp.Body.Read(b)
			log.Printf("request %d: partial read %d %v", i+1, k, err)
		case "all":
			b, err := io.ReadAll(resp.Body)
			log.Printf("request %d: %s, read %d bytes, err %v", i+1, resp.Status, len(b), err)
		default:
			log.Fatalf("bad -read %q", *read)
		}
		if *doClose {
			_ = resp.Body.Close()
		} else {
			kept = append(kept, resp)
		}
	}
	time.Sleep(*idle)
	if *closeIdle {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}
	fmt.Printf("done requests=%d errors=%d unclosed=%d\n", *n, errors, len(kept))
	time.Sleep(*hold)
}
