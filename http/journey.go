package http

import (
	"net/http"
	"sort"

	"github.com/crossdock/crossdock"
)

// handleJourney answers everything known about one event: the event as the
// broker still stores it (null once retention dropped it), where and when
// it was stored, and per subscription of the topic every attempt and the
// outcome; a subscription with no record yet shows as pending.
func (s *Server) handleJourney(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	topic := r.PathValue("topic")
	j, err := s.Journeys.Journey(ctx, topic, r.PathValue("id"))
	if err != nil {
		return err
	}
	ev, storedAt, err := s.Broker.Event(ctx, topic, j.Sequence)
	switch {
	case err == nil:
		j.Event = ev
		if j.PublishedAt.IsZero() {
			j.PublishedAt = storedAt
		}
	case crossdock.ErrorCode(err) == crossdock.ENOTFOUND:
		j.Event = nil
	default:
		return err
	}
	subs, err := s.Subscriptions.Subscriptions(ctx)
	if err != nil {
		return err
	}
	recorded := make(map[string]bool, len(j.Deliveries))
	for i := range j.Deliveries {
		recorded[j.Deliveries[i].Subscription] = true
		if j.Deliveries[i].Attempts == nil {
			j.Deliveries[i].Attempts = []crossdock.Attempt{}
		}
	}
	for _, sub := range subs {
		if sub.Topic == topic && !recorded[sub.Name] {
			j.Deliveries = append(j.Deliveries, crossdock.Delivery{
				Subscription: sub.Name,
				Status:       crossdock.StatusPending,
				Attempts:     []crossdock.Attempt{},
			})
		}
	}
	if j.Deliveries == nil {
		j.Deliveries = []crossdock.Delivery{}
	}
	sort.Slice(j.Deliveries, func(a, b int) bool {
		return j.Deliveries[a].Subscription < j.Deliveries[b].Subscription
	})
	if j.Topic == "" {
		j.Topic = topic
	}
	return writeJSON(w, http.StatusOK, j)
}
