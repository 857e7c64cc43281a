// The Go programs and templates the Markdown shows are the ones that run.
// In README.md, docs/ and clients/go/README.md, a fenced block right after
// the line
//
//	<!-- npm test: go run -->
//
// is a whole program: it is built and run against a fresh daemon (its
// 127.0.0.1:50051 replaced by the daemon's address) and must exit 0; if the
// next block follows <!-- npm test: output -->, the program must print
// exactly that. A block right after <!-- npm test: same as FILE --> must be
// FILE, byte for byte.

package sessionregistry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// block is one fenced block of a Markdown file with the marker above it.
type block struct {
	file, marker, body string
	line               int
	output             *string // the block marked as its output, if any
}

var marker = regexp.MustCompile(`^<!-- npm test: (.+) -->$`)

// markedBlocks returns the marked fenced blocks of one Markdown file.
func markedBlocks(t *testing.T, path string) []block {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []block
	for i := 0; i < len(lines); i++ {
		m := marker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s:%d: the marker is not right above a fenced block", path, i+1)
		}
		var body []string
		j := i + 2
		for ; j < len(lines) && lines[j] != "```"; j++ {
			body = append(body, lines[j])
		}
		b := block{file: path, marker: m[1], line: i + 1, body: strings.Join(body, "\n") + "\n"}
		if m[1] == "output" {
			if len(out) == 0 || out[len(out)-1].marker != "go run" {
				t.Fatalf("%s:%d: an output block that follows no program", path, i+1)
			}
			out[len(out)-1].output = &b.body
		} else {
			out = append(out, b)
		}
		i = j
	}
	return out
}

func markdownFiles(t *testing.T) []string {
	files := []string{filepath.Join(root, "README.md"), filepath.Join(root, "clients", "go", "README.md")}
	_ = filepath.Walk(filepath.Join(root, "docs"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	return files
}

func TestTheMarkdownsGoProgramsAndTemplatesRun(t *testing.T) {
	var programs, templates int
	for _, file := range markdownFiles(t) {
		for _, b := range markedBlocks(t, file) {
			b := b
			name, _ := filepath.Rel(root, b.file)
			t.Run(name+":"+strconv.Itoa(b.line), func(t *testing.T) {
				switch {
				case b.marker == "go run":
					programs++
					runProgram(t, b)
				case strings.HasPrefix(b.marker, "same as "):
					templates++
					want, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(b.marker, "same as ")))
					if err != nil {
						t.Fatal(err)
					}
					if b.body != string(want) {
						t.Fatalf("the block differs from %s; copy the file into it", strings.TrimPrefix(b.marker, "same as "))
					}
				default:
					t.Fatalf("unknown marker %q", b.marker)
				}
			})
		}
	}
	// The Go README's quick start, the main README's example, and the stubs-only
	// program and buf template of docs/other-languages.md at least.
	if programs < 3 || templates < 1 {
		t.Fatalf("%d programs and %d templates marked", programs, templates)
	}
}

func runProgram(t *testing.T, b block) {
	d, err := startDaemon()
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	dir := t.TempDir()
	source := strings.ReplaceAll(b.body, "127.0.0.1:50051", d.addr)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "main.go")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if e, ok := err.(*exec.ExitError); ok {
			stderr = string(e.Stderr)
		}
		t.Fatalf("go run: %v\n%s%s", err, out, stderr)
	}
	if b.output != nil && string(out) != *b.output {
		t.Fatalf("printed %q, the README says %q", out, *b.output)
	}
	if len(out) == 0 {
		t.Fatal("printed nothing")
	}
}
