// fetch URL...: GETs each URL with net/http and prints "ok BODY" or "error ...". Built with
// CGO_ENABLED=0 by tests/supervise.rs: Go's own resolver and raw system calls, which
// LD_PRELOAD never sees.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	client := &http.Client{Timeout: 10 * time.Second}
	for _, url := range os.Args[1:] {
		response, err := client.Get(url)
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		body, _ := io.ReadAll(response.Body)
		response.Body.Close()
		fmt.Println("ok", string(body))
	}
}
