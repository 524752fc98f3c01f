package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/octopods/octopods-operator/hack/benchenv"
)

// workload is wrk, one thread, with a Lua script that cycles through keys.
type workload struct {
	dir               string
	connections       int
	duration          time.Duration
	admitted, refused string // script paths
}

// script writes a wrk script sending each key in turn in X-Octopods-Auth.
func (w *workload) script(name string, keys []string) string {
	var s strings.Builder
	s.WriteString("local keys = {\n")
	for _, k := range keys {
		fmt.Fprintf(&s, "  '%s',\n", k)
	}
	// Formatted in init: only then does wrk know the Host header.
	s.WriteString(`}
local reqs = {}
init = function(args)
  for _, k in ipairs(keys) do
    reqs[#reqs+1] = wrk.format('GET', '/v1/messages', {['X-Octopods-Auth'] = k})
  end
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
`)
	path := w.dir + "/" + name + ".lua"
	benchenv.Check(os.WriteFile(path, []byte(s.String()), 0o600))
	return path
}

// round is one wrk run's figures.
type round struct {
	rps     float64
	cpuUs   float64 // CPU µs per request of the measured processes
	non2xx  int
	request int
}

var (
	requestsRe = regexp.MustCompile(`(\d+) requests in`)
	rpsRe      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	non2xxRe   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// run drives url with script for d, measuring the CPU of pids.
func (w *workload) run(url, script string, d time.Duration, pids func() []int) round {
	before := cpuTime(pids())
	out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(w.connections), "-d"+d.String(), "-s", script, url).CombinedOutput()
	if err != nil {
		panic(fmt.Sprintf("wrk: %v\n%s", err, out))
	}
	spent := cpuTime(pids()) - before
	r := round{request: atoi(requestsRe.FindSubmatch(out)), non2xx: atoi(non2xxRe.FindSubmatch(out))}
	r.rps, _ = strconv.ParseFloat(string(rpsRe.FindSubmatch(out)[1]), 64)
	r.cpuUs = float64(spent.Microseconds()) / float64(r.request)
	return r
}

func atoi(m [][]byte) int {
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// side is one target of a comparison: a URL, its script, the processes
// whose CPU counts, and what every answer must be.
type side struct {
	name, url, script string
	pids              func() []int
	refused           bool
}

// comparison is what compare prints: a title, and the row of make
// bench-scale's table.
type comparison struct{ title, goal, figure, target string }

// compare runs a and b in interleaved rounds after a warm-up of each, and
// prints the median round of each and the ratios b/a.
func (w *workload) compare(c comparison, a, b side, rounds int) {
	var ra, rb []round
	for _, s := range []side{a, b} {
		w.run(s.url, s.script, time.Second, s.pids)
	}
	for range rounds {
		ra = append(ra, w.checked(a))
		rb = append(rb, w.checked(b))
	}
	ma, mb := median(ra), median(rb)
	fmt.Printf("\n%s\n", c.title)
	fmt.Printf("  (a) %-44s %9.0f req/s  %6.1f CPU µs/req\n", a.name, ma.rps, ma.cpuUs)
	fmt.Printf("  (b) %-44s %9.0f req/s  %6.1f CPU µs/req\n", b.name, mb.rps, mb.cpuUs)
	fmt.Printf("  ratio b/a: throughput %.3f, CPU per request %.2fx\n", mb.rps/ma.rps, mb.cpuUs/ma.cpuUs)
	fmt.Printf("| %s | %s | %.3f throughput, %.2fx CPU/req (%.0f req/s, %.1f µs) | %s: %.0f req/s, %.1f µs | %s |\n",
		c.goal, c.figure, mb.rps/ma.rps, mb.cpuUs/ma.cpuUs, mb.rps, mb.cpuUs, a.name, ma.rps, ma.cpuUs, c.target)
}

// checked is one measured round of s, which must answer as expected.
func (w *workload) checked(s side) round {
	r := w.run(s.url, s.script, w.duration, s.pids)
	if want := map[bool]int{false: 0, true: r.request}[s.refused]; r.non2xx != want {
		panic(fmt.Sprintf("%s: %d of %d answers were not 2xx/3xx; want %d", s.name, r.non2xx, r.request, want))
	}
	return r
}

func median(rs []round) round {
	slices.SortFunc(rs, func(x, y round) int { return int(x.rps - y.rps) })
	return rs[len(rs)/2]
}

// cpuTime sums user and system CPU time of pids.
func cpuTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		total += benchenv.ProcCPU(pid)
	}
	return total
}

// children are the processes whose parent is pid (nginx's workers).
func children(pid int) []int {
	out, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	benchenv.Check(err)
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return pids
}

// start runs a command with its output in dir/name.log, until stop.
func start(dir, name string, cmd *exec.Cmd) (stop func()) {
	log, err := os.Create(dir + "/" + name + ".log")
	benchenv.Check(err)
	cmd.Stdout, cmd.Stderr = log, log
	benchenv.Check(cmd.Start())
	return func() {
		// SIGTERM, so that nginx's master stops its workers too.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = log.Close()
	}
}
