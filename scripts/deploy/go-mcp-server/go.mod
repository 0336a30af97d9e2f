module mcp-redirect/validate-deploy/go-mcp-server

go 1.19
