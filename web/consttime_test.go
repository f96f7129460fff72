package web_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// secretWords name the values that are secrets or stand for one.
var secretWords = []string{"token", "secret", "password", "signature", "csrf", "writekey",
	"allowed", "hash"}

// TestSecretsAreComparedInConstantTime reads the code that checks
// credentials (the console and APIs here, the ingestion edge in webhook)
// and fails on any == or != whose operand names a secret, unless the
// other side is empty: such comparisons must go through
// subtle.ConstantTimeCompare or hmac.Equal, whose time does not depend on
// how much of a guess was right.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("../webhook/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	compared := 0
	for _, file := range append(files, more...) {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(parsed, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok && isConstantTime(call) {
				compared++
			}
			bin, ok := n.(*ast.BinaryExpr)
			if !ok || (bin.Op != token.EQL && bin.Op != token.NEQ) ||
				isEmpty(bin.X) || isEmpty(bin.Y) {
				return true
			}
			for _, side := range []ast.Expr{bin.X, bin.Y} {
				if word := secretName(side); word != "" {
					t.Errorf("%s compares %s with %s", fset.Position(bin.Pos()), word, bin.Op)
				}
			}
			return true
		})
	}
	if compared < 4 {
		t.Errorf("found %d constant-time comparisons; the checks moved?", compared)
	}
}

func isConstantTime(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && (sel.Sel.Name == "ConstantTimeCompare" || sel.Sel.Name == "Equal" &&
		isIdent(sel.X, "hmac"))
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// isEmpty tells whether e is "", nil or a number: comparing a secret with
// one says only whether it is set.
func isEmpty(e ast.Expr) bool {
	if lit, ok := e.(*ast.BasicLit); ok {
		return lit.Kind == token.INT || lit.Value == `""`
	}
	return isIdent(e, "nil")
}

// secretName returns the secret word e's name holds, or "".
func secretName(e ast.Expr) string {
	var name string
	switch v := e.(type) {
	case *ast.Ident:
		name = v.Name
	case *ast.SelectorExpr:
		name = v.Sel.Name
	case *ast.CallExpr:
		return secretName(v.Fun)
	case *ast.IndexExpr:
		return secretName(v.X)
	default:
		return ""
	}
	lower := strings.ToLower(name)
	for _, word := range secretWords {
		if strings.Contains(lower, word) {
			return name
		}
	}
	return ""
}
