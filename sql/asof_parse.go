package qsql

import (
	"context"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
	ast "github.com/dolthub/vitess/go/vt/sqlparser"
)

// asOfParser is the engine's parser with one repair for AS OF. The
// go-mysql-server v0.20.0 planner only accepts a literal, a variable, a
// function call or a CONVERT/CAST as an AS OF expression, fails any other
// one with "invalid AS OF expression type" and any value but a string or
// a datetime with "cannot be used in AS OF". So the natural
// `t AS OF NOW() - INTERVAL 5 SECOND` (arithmetic) and `t AS OF @ts` (a
// user variable holding an integer timestamp) are refused. The parser
// wraps such an expression (arithmetic, unary, a parenthesised
// non-subquery, a user variable) in CONVERT(expr, CHAR): the planner then
// evaluates it like any CONVERT and hands the value over as a string,
// which asOfTimestamp reads as it reads the unwrapped value (a datetime's
// text is the session zone's wall clock, as the datetime itself is).
//
// Every statement parse goes through it (queries, prepared statements,
// view and stored program bodies); a query whose text has no "OF" word is
// returned untouched without walking its tree.
type asOfParser struct {
	gms.Parser
}

var _ gms.Parser = asOfParser{}

func (p asOfParser) ParseSimple(query string) (ast.Statement, error) {
	st, err := p.Parser.ParseSimple(query)
	return rewriteAsOf(query, st), err
}

func (p asOfParser) Parse(ctx *gms.Context, query string, multi bool) (ast.Statement, string, string, error) {
	st, parsed, rest, err := p.Parser.Parse(ctx, query, multi)
	return rewriteAsOf(query, st), parsed, rest, err
}

func (p asOfParser) ParseWithOptions(ctx context.Context, query string, delimiter rune, multi bool, opts ast.ParserOptions) (ast.Statement, string, string, error) {
	st, parsed, rest, err := p.Parser.ParseWithOptions(ctx, query, delimiter, multi, opts)
	return rewriteAsOf(query, st), parsed, rest, err
}

func (p asOfParser) ParseOneWithOptions(ctx context.Context, query string, opts ast.ParserOptions) (ast.Statement, int, error) {
	st, next, err := p.Parser.ParseOneWithOptions(ctx, query, opts)
	return rewriteAsOf(query, st), next, err
}

// rewriteAsOf wraps, in place, the AS OF expressions of st the planner
// would refuse (see asOfParser).
func rewriteAsOf(query string, st ast.Statement) ast.Statement {
	if st == nil || !hasWordOf(query) {
		return st
	}
	_ = ast.Walk(func(n ast.SQLNode) (bool, error) {
		if a, ok := n.(*ast.AsOf); ok && a != nil && needsAsOfCast(a.Time) {
			a.Time = &ast.ConvertExpr{Name: "CONVERT", Expr: a.Time, Type: &ast.ConvertType{Type: "char"}}
		}
		return true, nil
	}, st)
	return st
}

// needsAsOfCast reports whether e is a computed value the planner refuses
// as an AS OF expression but can evaluate inside CONVERT. Subqueries and
// everything else keep the planner's own verdict.
func needsAsOfCast(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BinaryExpr, *ast.UnaryExpr, *ast.IntervalExpr:
		return true
	case *ast.SQLVal:
		// A placeholder: the planner evaluates AS OF while preparing,
		// before any value is bound, and crashes on a bare one; inside
		// CONVERT it fails with an error instead.
		return x.Type == ast.ValArg
	case *ast.ParenExpr:
		_, sub := x.Expr.(*ast.Subquery)
		return !sub
	case *ast.ColName:
		// A user variable holding an integer (SET @ts = 470…) would be
		// refused for its type; as a string it is a hybrid timestamp.
		name := x.Name.String()
		return x.Qualifier.IsEmpty() && strings.HasPrefix(name, "@") && !strings.HasPrefix(name, "@@")
	}
	return false
}

// hasWordOf reports whether s contains "of" (any case) as a word: the
// cheap test that keeps the tree walk off statements without AS OF.
func hasWordOf(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if (s[i] == 'o' || s[i] == 'O') && (s[i+1] == 'f' || s[i+1] == 'F') &&
			(i == 0 || !isWordByte(s[i-1])) && (i+2 == len(s) || !isWordByte(s[i+2])) {
			return true
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
