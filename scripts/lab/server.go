// server.go: the lab's HTTP/1.1 server (stdlib only), like the server of seed 000.
//
// Every path answers "hello world" (11 bytes, Content-Length set). A request body (the HTTPS POSTs
// of seed 004) is read to the end first.
//
//	-keepalives=false  srv.SetKeepAlivesEnabled(false): every response says "Connection: close" and
//	                   the server sends FIN right after it (seed 000, "server keep alive off").
//	-tls               HTTPS with a self-signed certificate generated at start-up (seed 004).
//
// With keep-alives on, this server never closes a connection first: IdleTimeout and ReadTimeout
// are 0, so an idle connection waits for its client forever. It does honour a request's
// "Connection: close" (that is what DisableKeepAlives sends, seed 002).
//
// It prints "listening" once the socket is bound, so scripts/lab/run knows when to start a client.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"time"
)

// selfSigned makes a throw-away certificate for 127.0.0.1; nothing is written to disk.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "connscope-lab"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func main() {
	port := flag.Int("port", 9000, "listen port on 127.0.0.1")
	keepalives := flag.Bool("keepalives", true, "false: SetKeepAlivesEnabled(false)")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("hello world"))
	})
	srv := &http.Server{Handler: mux}
	srv.SetKeepAlivesEnabled(*keepalives)

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s keepalives=%v tls=%v\n", ln.Addr(), *keepalives, *useTLS)
	if *useTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned()}}
		log.Fatal(srv.ServeTLS(ln, "", ""))
	}
	log.Fatal(srv.Serve(ln))
}
