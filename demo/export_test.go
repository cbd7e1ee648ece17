package demo

// Exported for the external tests and fuzzers of the outside-input parsers.
var (
	Verify      = verify
	BinaryEvent = binaryEvent
	ParsePatch  = parsePatch
)
