// Package bandit is the personalization bandit: a contextual bandit that
// chooses, per member context, the order of a page's rows and the artwork
// shown for a title, and logs the exact probability of every choice so that
// a new policy can be judged off-policy from the logs before it serves.
//
// The policy is LinUCB with disjoint linear models (one per arm) and
// ε-exploration on top: with probability 1−ε the arm (or the row order) of
// highest upper confidence bound, else a uniform one. The ε part is what
// makes every action's probability known and non-zero, which inverse
// propensity weighting needs; the random draw is a hash of the policy's seed
// and the decision id, so replaying a decision gives the same answer.
//
// The package is a library: no HTTP, no store. A Featurizer turns a
// context's attributes into a vector (its encoding is saved in the policy so
// serving and training agree), Policy.Decide and Policy.DecidePage choose,
// ReadLog joins decision and reward lines, Fit trains a policy from logs,
// Evaluate estimates a policy's value on logs (IPS, SNIPS, doubly robust),
// and World is a planted simulator for tests and demos.
//
// A Policy is not changed after Fit or Load: it is safe for concurrent use.
package bandit

import (
	"github.com/baton-ml/baton/internal/fault"
)

// Kind is what a decision chooses.
type Kind string

// The decision kinds.
const (
	RowOrder Kind = "row_order" // the order of a page's rows (a slate)
	Artwork  Kind = "artwork"   // the artwork shown for one title
)

func (k Kind) valid() bool { return k == RowOrder || k == Artwork }

// MaxRows bounds a row-order slate: the propensity of an order is ε/K!
// plus the greedy share, and beyond 20 rows K! leaves float64's exact
// integers and the probability of a shuffled order is too small to weigh
// anything off-policy.
const MaxRows = 20

// The errors callers tell apart. All are invalid input.
var (
	// ErrNotPolicy: a file that is not a bandit policy file (another
	// JSON document, or not JSON).
	ErrNotPolicy = fault.New(fault.Invalid, "not a bandit policy file")
	// ErrPolicyVersion: a policy file of a format version this build does
	// not read.
	ErrPolicyVersion = fault.New(fault.Invalid, "unsupported bandit policy file version")
	// ErrContext: a context attribute the featurizer cannot encode (a
	// number feature given text, a value of an unsupported type).
	ErrContext = fault.New(fault.Invalid, "bad context attribute")
	// ErrArms: arms missing, empty, repeated or too many.
	ErrArms = fault.New(fault.Invalid, "bad arms")
	// ErrParams: alpha, epsilon or lambda out of range.
	ErrParams = fault.New(fault.Invalid, "bad policy parameters")
	// ErrNoEvents: nothing to train or evaluate on.
	ErrNoEvents = fault.New(fault.Invalid, "no events")
)
