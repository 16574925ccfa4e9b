package similar

// Threshold is the mean Jaccard similarity of stem sets at or above which
// a ticket joins a cluster. It was chosen on the labelled set of
// TestPrecision (13 problems in five families of near misses, 208
// tickets, eight orders): at 0.25 pairwise precision is 0.957–1.0 and
// recall 0.77–0.94 (with every band's tickets as candidates; see
// CandidateLimit); at 0.2 precision fell to 0.81 on one order.
const Threshold = 0.25

// CandidateLimit is how many look-alikes Best compares a new ticket with:
// the newest tickets sharing one of its bands. Each costs the database
// reading its bands' rows (twice as many per band, see
// storage.Tx.SimilarCandidates) while the processing transaction holds
// the writer: at 50, 3,200 band rows a new ticket were 17% of tend
// bench's processing. TestPrecision chooses its candidates the same way;
// from 50 to 16 its precision stayed 0.957–1.0 (0.967–1.0) and recall
// went from 0.774–0.938 to 0.749–0.927.
const CandidateLimit = 16

// Candidate is an earlier ticket that shares an LSH band with a new one.
type Candidate struct {
	Ticket  int64
	Cluster int64    // the cluster it belongs to (its own number when alone)
	Stems   []string // its stem set, for the exact similarity
}

// Best picks the cluster a new ticket with stems joins: the cluster whose
// candidate members are on average most similar to it, at or above
// Threshold. Average rather than single linkage: one borderline match
// must not pull a ticket into another problem's cluster, and with it
// every later ticket of its own problem (single linkage let two
// problems chain into one on the labelled set). ok is false when no
// cluster is similar enough: the ticket starts one of its own.
func Best(stems []string, candidates []Candidate) (cluster int64, score float64, ok bool) {
	sum := map[int64]float64{}
	n := map[int64]int{}
	for _, c := range candidates {
		sum[c.Cluster] += Jaccard(stems, c.Stems)
		n[c.Cluster]++
	}
	for c, total := range sum {
		s := total / float64(n[c])
		if s >= Threshold && (s > score || (s == score && c < cluster)) {
			cluster, score, ok = c, s, true
		}
	}
	return cluster, score, ok
}

// Jaccard is the exact similarity of two stem sets: the signature only
// finds candidates (its estimate errs by ±0.06 at 64 hashes, enough to
// chain two problems together), the stems decide.
func Jaccard(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	in := make(map[string]bool, len(a))
	for _, s := range a {
		in[s] = true
	}
	common := 0
	for _, s := range b {
		if in[s] {
			common++
		}
	}
	return float64(common) / float64(len(a)+len(b)-common)
}
