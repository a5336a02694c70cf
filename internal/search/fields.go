package search

import (
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/suggest"
)

// Kind is the type of a field, as filters and orders see it.
type Kind int

// The kinds of fields.
const (
	KindText Kind = iota
	KindState
	KindTime
	KindInteger
	KindFloat
	KindDecimal
	KindBoolean
)

func (k Kind) String() string {
	return [...]string{"text", "state", "time", "integer", "float", "decimal", "boolean"}[k]
}

// Field is a field resolved against an activity: an item or a built-in
// column of its views.
type Field struct {
	Name   string // the item's name as defined, or the built-in column
	Column string // the view's column: the item's name in lower case
	Kind   Kind
	// Item is the item, nil for a built-in column.
	Item *definition.Item
	// Nullable: the field can be empty (an item, begin_time, end_time).
	Nullable bool
}

// The built-in columns of every activity view.
const (
	ColInstanceID   = "instance_id"
	ColState        = "state"
	ColBeginTime    = "begin_time"
	ColEndTime      = "end_time"
	ColLastModified = "last_modified"
	ColEvents       = "events"
)

var builtins = []Field{
	{Name: ColInstanceID, Column: ColInstanceID, Kind: KindText},
	{Name: ColState, Column: ColState, Kind: KindState},
	{Name: ColBeginTime, Column: ColBeginTime, Kind: KindTime, Nullable: true},
	{Name: ColEndTime, Column: ColEndTime, Kind: KindTime, Nullable: true},
	{Name: ColLastModified, Column: ColLastModified, Kind: KindTime},
	{Name: ColEvents, Column: ColEvents, Kind: KindInteger},
}

var itemKinds = map[definition.Type]Kind{
	definition.Milestone: KindTime,
	definition.Text:      KindText,
	definition.Integer:   KindInteger,
	definition.Float:     KindFloat,
	definition.Decimal:   KindDecimal,
	definition.Boolean:   KindBoolean,
}

// describe names a field and its type in an error: "Quantity (an integer
// item)", "end_time (a time)".
func (f Field) describe() string {
	if f.Item != nil {
		return fmt.Sprintf("%s (%s %s item)", f.Name, article(string(f.Item.Type)), f.Item.Type)
	}
	return fmt.Sprintf("%s (%s %s column)", f.Name, article(f.Kind.String()), f.Kind)
}

// resolve finds the field named name (in any case) in activity a, or
// returns an error at pos naming the closest field.
func resolve(a definition.Activity, name string, pos int) (Field, error) {
	for _, b := range builtins {
		if strings.EqualFold(b.Name, name) {
			return b, nil
		}
	}
	for i := range a.Items {
		it := &a.Items[i]
		if strings.EqualFold(it.Name, name) {
			kind, ok := itemKinds[it.Type]
			if !ok {
				return Field{}, errAt(pos, "item %s has type %q, which this bam cannot filter on", it.Name, it.Type)
			}
			return Field{Name: it.Name, Column: strings.ToLower(it.Name), Kind: kind, Item: it, Nullable: true}, nil
		}
	}
	known := make([]string, 0, len(a.Items)+len(builtins))
	for _, it := range a.Items {
		known = append(known, it.Name)
	}
	for _, b := range builtins {
		known = append(known, b.Name)
	}
	return Field{}, errAt(pos, "%q is no item of activity %s, nor instance_id, state, begin_time, end_time, last_modified or events%s",
		name, a.Name, suggest.DidYouMean(name, known))
}

// opsFor lists the operators a kind takes, as an error names them.
func opsFor(k Kind) []Op {
	common := []Op{OpEq, OpNe, OpIn, OpNotIn, OpIsEmpty, OpIsNotEmpty}
	ordered := []Op{OpLt, OpLe, OpGt, OpGe, OpBetween}
	switch k {
	case KindText:
		return append(append(common, ordered...), OpContains, OpStartsWith)
	case KindTime:
		return append(append(common, ordered...), OpInLast)
	case KindInteger, KindFloat, KindDecimal:
		return append(common, ordered...)
	}
	return common
}

func opList(ops []Op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if strings.IndexByte("aeiou", word[0]) >= 0 {
		return "an"
	}
	return "a"
}
