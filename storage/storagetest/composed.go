package storagetest

// Fixed is a storage.Composed.Raw for bytes made already: the outgoing
// mail tests queue directly.
func Fixed(raw []byte) func() ([]byte, error) {
	return func() ([]byte, error) { return raw, nil }
}
