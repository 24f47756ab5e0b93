package pve

import (
	"bytes"
	"fmt"
	"strconv"
)

// Bool decodes the API's booleans, which arrive as 0/1 numbers, as "0"/"1"
// strings or as JSON true/false depending on the endpoint and version.
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bool) UnmarshalJSON(data []byte) error {
	s := string(bytes.Trim(data, `"`))
	switch s {
	case "1", "true":
		*b = true
	case "0", "false", "", "null":
		*b = false
	default:
		return fmt.Errorf("pve: %s is not a boolean", data)
	}
	return nil
}

// formBool encodes a boolean the way the API's parameter parser wants.
func formBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Int decodes integers the API sometimes sends as strings.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(data []byte) error {
	s := string(bytes.Trim(data, `"`))
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("pve: %s is not an integer", data)
	}
	*n = Int(v)
	return nil
}
