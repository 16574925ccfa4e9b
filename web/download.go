package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"

	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/storage"
)

// downloadMessage loads message {id} of ticket {number} from the path. A
// message is only served under the ticket it belongs to, so a URL cannot
// reach another ticket's mail by changing one number.
func (s *Server) downloadMessage(w http.ResponseWriter, r *http.Request) (storage.Message, []byte, bool) {
	n, err := pathNumber(r, "number")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return storage.Message{}, nil, false
	}
	id, err := pathNumber(r, "id")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return storage.Message{}, nil, false
	}
	m, err := s.store.GetMessage(r.Context(), id)
	if err != nil {
		s.fail(w, r, "download", err)
		return storage.Message{}, nil, false
	}
	if m.TicketID == nil || *m.TicketID != n {
		http.NotFound(w, r)
		return storage.Message{}, nil, false
	}
	raw, err := s.store.Raw(r.Context(), m.RawHash)
	if err != nil {
		s.fail(w, r, "download", err)
		return storage.Message{}, nil, false
	}
	return m, raw, true
}

// rawDownload serves the exact bytes received, as a message/rfc822 file
// (RFC 2046 §5.2.1) to open in a mail client.
func (s *Server) rawDownload(w http.ResponseWriter, r *http.Request, _ storage.SessionInfo) {
	m, raw, ok := s.downloadMessage(w, r)
	if !ok {
		return
	}
	name := fmt.Sprintf("ticket-%d-message-%d.eml", *m.TicketID, m.ID)
	serveDownload(w, raw, "message/rfc822", name)
}

// attachmentDownload serves one attachment, cut from the raw message.
func (s *Server) attachmentDownload(w http.ResponseWriter, r *http.Request, _ storage.SessionInfo) {
	m, raw, ok := s.downloadMessage(w, r)
	if !ok {
		return
	}
	part, err := strconv.Atoi(r.PathValue("part"))
	if err != nil || part < 0 {
		http.Error(w, "bad part", http.StatusBadRequest)
		return
	}
	p, err := attachmentPart(raw, part)
	if err != nil {
		s.log.Info("attachment not found", "message", m.ID, "part", part, "err", err)
		http.NotFound(w, r)
		return
	}
	atts, err := s.store.Attachments(r.Context(), []int64{m.ID})
	if err != nil {
		s.internalError(w, r, "download", err)
		return
	}
	name := p.FileName
	for _, a := range atts[m.ID] {
		if a.Part != part {
			continue
		}
		if a.Filename != "" {
			name = a.Filename
		}
		if sum := sha256.Sum256(p.Content); a.Hash != "" && a.Hash != hex.EncodeToString(sum[:]) {
			// Both parse with header.ParseMIME, so only a message listed
			// by an older parser (other line ends, another charset
			// fallback) gets here: still the customer's attachment, but
			// worth knowing.
			s.log.Warn("attachment differs from its listing", "message", m.ID, "part", part)
		}
	}
	serveDownload(w, p.Content, downloadType(p.ContentType), safeFilename(name, fmt.Sprintf("attachment-%d", part)))
}

// attachmentPart parses raw as ingest does (header.ParseMIME) and returns
// part number n of header.Parts, the numbering ingest stored.
func attachmentPart(raw []byte, n int) (*enmime.Part, error) {
	parts, err := attachmentParts(raw)
	if err != nil {
		return nil, err
	}
	if n < 0 || n >= len(parts) {
		return nil, fmt.Errorf("part %d of %d: %w", n, len(parts), storage.ErrNotFound)
	}
	return parts[n].Part, nil
}

// attachmentParts lists the parts of raw in ingest's numbering.
func attachmentParts(raw []byte) (parts []header.Part, err error) {
	defer func() {
		// A parser bug must not take a request down with it.
		if r := recover(); r != nil {
			parts, err = nil, fmt.Errorf("parse: panic: %v", r)
		}
	}()
	env, err := header.ParseMIME(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return header.Parts(env), nil
}

// serveDownload sends body as a file to save, never to render: a mail
// attachment is a stranger's file, and served inline as HTML or SVG it
// would run script on our origin.
func serveDownload(w http.ResponseWriter, body []byte, contentType, filename string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
	if disp == "" {
		disp = "attachment"
	}
	h.Set("Content-Disposition", disp)
	h.Set("X-Content-Type-Options", "nosniff")
	// Should a browser render it anyway, it runs in a sandbox with no
	// script and no access to our origin.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// downloadType keeps an attachment's declared type when it is one a
// browser cannot execute; anything else (HTML, SVG, XML, scripts, unknown
// types) is served as application/octet-stream.
func downloadType(declared string) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil {
		return "application/octet-stream"
	}
	switch mt {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff",
		"application/pdf", "application/zip", "application/gzip", "text/plain", "text/csv", "text/calendar",
		"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation",
		"application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
		"message/rfc822", "audio/mpeg", "audio/ogg", "video/mp4":
		return mt
	}
	return "application/octet-stream"
}

// trimName drops what file systems and users trip over at the ends of a
// name: spaces, leading dots (hidden files), trailing dots (Windows).
func trimName(s string) string {
	// Dots and spaces together: ". .x" must not come out as ".x" (a
	// hidden file, found by FuzzSafeFilename).
	return strings.Trim(strings.TrimSpace(s), ". ")
}

// maxFilenameBytes bounds a download's file name; file systems stop at
// 255 bytes and a name is no place for a payload.
const maxFilenameBytes = 180

// safeFilename makes a sender's file name safe to offer for saving: the
// last path element only (clients send C:\Users\…\x.pdf), no control or
// invisible formatting characters (a right-to-left override turns
// "invoice\u202Efdp.exe" into "invoiceexe.pdf" on screen), no leading dots,
// at most maxFilenameBytes with the extension kept. Empty results get
// fallback.
func safeFilename(name, fallback string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError:
			return -1
		case r == '"' || r == ':' || r == '*' || r == '?' || r == '<' || r == '>' || r == '|':
			return '_'
		}
		return r
	}, name)
	name = trimName(name)
	if len(name) > maxFilenameBytes {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		stem := name[:maxFilenameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = trimName(trimName(stem) + ext)
	}
	if name == "" {
		return fallback
	}
	return name
}
