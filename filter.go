package crossdock

// Filter decides whether an event belongs to a subscription.
type Filter interface {
	// Match reports whether the event passes. An error means the filter
	// could not be evaluated on this event (EINVALID).
	Match(ev *Event) (bool, error)
}

// MatchAll is the filter of a subscription without one.
var MatchAll Filter = matchAll{}

type matchAll struct{}

func (matchAll) Match(*Event) (bool, error) { return true, nil }
