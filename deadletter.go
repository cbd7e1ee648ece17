package crossdock

import (
	"context"
	"time"
)

// Dead-letter reasons.
const (
	ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"
	ReasonRejected                 = "Rejected"
	ReasonTTLExpired               = "TTLExpired"
	ReasonFilterError              = "FilterError"
	ReasonTransformError           = "TransformError"
	ReasonEnrichmentFailed         = "EnrichmentFailed"
	ReasonSourceNotFound           = "SourceNotFound"
)

// DeadLetter is a delivery that will not be retried again unless an
// operator resubmits it. Its ID is the event's id.
type DeadLetter struct {
	ID             string    `json:"id"`
	Subscription   string    `json:"-"`
	Topic          string    `json:"-"`
	Event          *Event    `json:"event"`
	Reason         string    `json:"reason"`
	Description    string    `json:"description"`
	Attempts       int       `json:"attempts"`
	DeadLetteredAt time.Time `json:"dead_lettered_at"`
}

// DeadLetterService lets operators browse, resubmit and purge a
// subscription's dead letters.
type DeadLetterService interface {
	// DeadLetters returns up to limit dead letters, oldest first, starting at
	// cursor ("" for the start), and the cursor of the next page ("" on the
	// last). ENOTFOUND for an unknown subscription, EINVALID for a bad cursor.
	DeadLetters(ctx context.Context, sub Subscription, cursor string, limit int) ([]DeadLetter, string, error)

	// ResubmitDeadLetters hands the dead letters with the ids (all of them
	// when ids is empty) back to the subscription alone, with a fresh
	// attempt count, and removes them from the queue. It returns how many.
	ResubmitDeadLetters(ctx context.Context, sub Subscription, ids []string) (int, error)

	// DeleteDeadLetter purges one dead letter. ENOTFOUND when there is none
	// with the id.
	DeleteDeadLetter(ctx context.Context, sub Subscription, id string) error
}
