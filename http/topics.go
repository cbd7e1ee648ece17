package http

import (
	"net/http"

	"github.com/crossdock/crossdock"
)

// topicView is a topic as the API shows it, durations as Go duration
// strings such as "10m0s".
type topicView struct {
	Name        string `json:"name"`
	DedupWindow string `json:"dedup_window"`
	Retention   string `json:"retention"`
}

func newTopicView(t crossdock.Topic) topicView {
	t = t.WithDefaults()
	return topicView{Name: t.Name, DedupWindow: t.DedupWindow.String(), Retention: t.Retention.String()}
}

// handleTopics answers every topic, sorted by name.
func (s *Server) handleTopics(w http.ResponseWriter, r *http.Request) error {
	topics, err := s.Broker.Topics(r.Context())
	if err != nil {
		return err
	}
	items := make([]topicView, 0, len(topics))
	for _, t := range topics {
		items = append(items, newTopicView(t))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// handleTopic answers one topic, or 404.
func (s *Server) handleTopic(w http.ResponseWriter, r *http.Request) error {
	t, err := s.Broker.Topic(r.Context(), r.PathValue("topic"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newTopicView(*t))
}
