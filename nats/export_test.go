package nats

// Internals exposed to the external tests.
var (
	VersionAtLeast = versionAtLeast
	IDToken        = idToken
)
