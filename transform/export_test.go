package transform

// DecodeJSON exposes the payload decoder to the external tests.
var DecodeJSON = decodeJSON
