// Package schema holds the JSON Schema of baton's YAML flow files, for
// editors (yaml-language-server) and for serving from the API.
package schema

import _ "embed"

// Flow is the JSON Schema (draft 2020-12) of a flow file. It describes the
// shape of the file; flow.Parse checks more (known needs, cycles, cron
// syntax) and is the authority. Treat the slice as read-only.
//
//go:embed flow.schema.json
var Flow []byte
