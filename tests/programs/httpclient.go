// httpclient URL N MODE: sends N GET requests, then prints "done" and stays alive until its
// standard input closes (so the test that started it decides when it ends). Used by tests/sockets.rs.
//
// MODE leak:  one shared client; the response body is never read nor closed, so no connection goes
//             back to the pool: every request opens a new one, left ESTABLISHED.
// MODE close: a new transport per request; the body is read and closed, then the idle connection
//             is closed, so the client sends the first FIN and its socket ends in TIME_WAIT.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

func main() {
	url, mode := os.Args[1], os.Args[3]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var leaked []*http.Response
	shared := &http.Client{Transport: &http.Transport{}}
	for i := 0; i < n; i++ {
		switch mode {
		case "leak":
			resp, err := shared.Get(url)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			leaked = append(leaked, resp)
		case "close":
			tr := &http.Transport{}
			resp, err := (&http.Client{Transport: tr}).Get(url)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			_, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			tr.CloseIdleConnections()
		default:
			fmt.Fprintln(os.Stderr, "mode: leak or close")
			os.Exit(2)
		}
	}
	fmt.Println("done", len(leaked))
	_, _ = io.Copy(io.Discard, os.Stdin)
}
