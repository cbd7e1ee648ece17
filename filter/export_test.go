package filter

// DecodeJSON exposes the payload decoder to the external tests.
var DecodeJSON = decodeJSON
