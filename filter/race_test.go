//go:build race

package filter_test

// raceDetector is true when the tests run with -race, which makes
// evaluating up to the cost limit take seconds.
const raceDetector = true
