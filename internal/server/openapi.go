package server

import _ "embed"

// openAPI documents the API; a test keeps it in step with routes().
//
//go:embed openapi.yaml
var openAPI []byte
