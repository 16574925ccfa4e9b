package replytext

import (
	"regexp"
	"strings"

	"github.com/inbucket/html2text"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// ExtractHTML returns what the sender newly wrote in an HTML reply, as
// plain text. Quote containers are removed from the tree first: every
// <blockquote>, Gmail's div.gmail_quote (unless it holds a forward),
// Thunderbird's div.moz-cite-prefix, Yahoo's div.yahoo_quoted, and the
// Outlook header blocks (div#divRplyFwdMsg, div.OutlookMessageHeader and
// desktop Outlook's border-top div around "From:") together with
// everything after them, which is the original message. The rest is
// converted with html2text and run through Extract, which catches what
// is left in plain form (attributions, "Sent from my iPhone").
func ExtractHTML(s string) string {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		// x/net/html only fails on reader errors; fall back to text.
		return Extract(s)
	}
	prune(doc)
	text, err := html2text.FromHTMLNode(doc, html2text.Options{OmitLinks: true})
	if err != nil {
		return ""
	}
	return Extract(text)
}

// prune walks the tree and removes quoted history. It reports whether it
// cut the rest of the document, so that callers stop walking too.
func prune(n *html.Node) bool {
	for c := n.FirstChild; c != nil; {
		next := c.NextSibling
		switch quoteRole(c) {
		case dropNode:
			n.RemoveChild(c)
		case dropRest:
			cutFrom(c)
			return true
		default:
			if prune(c) {
				return true
			}
		}
		c = next
	}
	return false
}

type role int

const (
	keepNode role = iota
	dropNode      // remove this element only
	dropRest      // remove this element and everything after it
)

var borderTop = regexp.MustCompile(`(?i)border-top\s*:\s*solid`)

func quoteRole(n *html.Node) role {
	if n.Type != html.ElementNode {
		return keepNode
	}
	id, class, style := attr(n, "id"), " "+attr(n, "class")+" ", attr(n, "style")
	switch {
	case n.DataAtom == atom.Blockquote:
		return dropNode
	case strings.Contains(class, " gmail_quote "):
		if isForward(n) {
			return keepNode
		}
		return dropNode
	case strings.Contains(class, " moz-cite-prefix "), strings.Contains(class, " gmail_attr "),
		strings.Contains(class, " yahoo_quoted "):
		return dropNode
	case id == "divRplyFwdMsg", strings.Contains(class, " OutlookMessageHeader "):
		return dropRest
	case n.DataAtom == atom.Div && borderTop.MatchString(style) && startsWithFrom(n):
		return dropRest
	case n.DataAtom == atom.Hr && nextElementIsRest(n):
		return dropRest
	}
	return keepNode
}

// nextElementIsRest catches the <hr> Outlook web puts before divRplyFwdMsg.
func nextElementIsRest(n *html.Node) bool {
	for s := n.NextSibling; s != nil; s = s.NextSibling {
		if s.Type == html.ElementNode {
			return quoteRole(s) == dropRest
		}
	}
	return false
}

// cutFrom removes n, its following siblings, and the following siblings
// of each ancestor below <body>: in document order that is the whole
// original message.
func cutFrom(n *html.Node) {
	start := n
	for cur := n; cur != nil && cur.Parent != nil; {
		p := cur.Parent
		for s := start; s != nil; {
			next := s.NextSibling
			p.RemoveChild(s)
			s = next
		}
		if p.DataAtom == atom.Body || p.DataAtom == atom.Html {
			return
		}
		cur, start = p, p.NextSibling
	}
}

var forwardText = regexp.MustCompile(`(?i)^\s*-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|mensagem encaminhada|doorgestuurd bericht)`)

func isForward(n *html.Node) bool {
	return forwardText.MatchString(textOf(n, 200))
}

var fromLabel = regexp.MustCompile(`(?i)^\s*(?:from|von|de|van|da|från|fra|od|от|差出人)\s?:`)

func startsWithFrom(n *html.Node) bool {
	return fromLabel.MatchString(textOf(n, 100))
}

// textOf returns up to max bytes of n's text content.
func textOf(n *html.Node, max int) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if b.Len() >= max {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
