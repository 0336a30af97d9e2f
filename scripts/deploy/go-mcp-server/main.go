// A minimal MCP stdio server in Go, for scripts/validate-deploy.sh: it stands in for a static Go
// server such as github-mcp-server (which cannot be built here) at the path the
// go-server-supervised example runs. Standard library only, built with CGO_ENABLED=0: a static
// binary with Go's own resolver, which never loads LD_PRELOAD.
//
// It speaks newline-delimited JSON-RPC on stdin and stdout and offers one tool, `fetch`
// ({"url": ...}): a GET with net/http whose body is the tool's text result. Log lines go to
// stderr; stdout carries only the protocol.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func fetch(url string) (string, bool) {
	client := &http.Client{Timeout: 20 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		return err.Error(), true
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		return err.Error(), true
	}
	return fmt.Sprintf("HTTP %d\n%s", response.StatusCode, body), response.StatusCode >= 400
}

func answer(req request) interface{} {
	switch req.Method {
	case "initialize":
		var params struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(req.Params, &params)
		return map[string]interface{}{
			"protocolVersion": params.ProtocolVersion,
			"capabilities":    map[string]interface{}{"tools": map[string]interface{}{}},
			"serverInfo":      map[string]string{"name": "go-mcp-server", "version": "0.1.0"},
		}
	case "ping":
		return map[string]interface{}{}
	case "tools/list":
		return map[string]interface{}{"tools": []interface{}{map[string]interface{}{
			"name":        "fetch",
			"description": "GET a URL and return its body",
			"inputSchema": map[string]interface{}{
				"type":       "object",
				"properties": map[string]interface{}{"url": map[string]string{"type": "string"}},
				"required":   []string{"url"},
			},
		}}}
	case "tools/call":
		var params struct {
			Name      string `json:"name"`
			Arguments struct {
				URL string `json:"url"`
			} `json:"arguments"`
		}
		_ = json.Unmarshal(req.Params, &params)
		if params.Name != "fetch" {
			return map[string]interface{}{"content": []textContent{{"text", "unknown tool " + params.Name}}, "isError": true}
		}
		text, failed := fetch(params.Arguments.URL)
		return map[string]interface{}{"content": []textContent{{"text", text}}, "isError": failed}
	}
	return nil
}

func main() {
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintln(os.Stderr, "go-mcp-server: ready on stdio")
	for in.Scan() {
		var req request
		if json.Unmarshal(in.Bytes(), &req) != nil || len(req.ID) == 0 {
			continue // a notification, or not JSON-RPC
		}
		reply := map[string]interface{}{"jsonrpc": "2.0", "id": req.ID}
		if result := answer(req); result != nil {
			reply["result"] = result
		} else {
			reply["error"] = map[string]interface{}{"code": -32601, "message": "method not found: " + req.Method}
		}
		if out.Encode(reply) != nil {
			return
		}
	}
}
