package main

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// The simulated population of `knit bench`: SegKicks shoppers on iPhone,
// Android and the web, and SegRuns runners who log their workouts. Every
// person is derived from the seed and their index alone, so the load
// generator and the seeder need no table of people, and a person looks the
// same in every run with the same seed.

// benchKind is how a simulated person uses the apps.
type benchKind uint8

const (
	kindVisitor     benchKind = iota // browses the shop, never signs in
	kindShopper                      // signs in, browses, orders
	kindRunner                       // also runs with SegRuns
	kindHeavyRunner                  // runs a lot: 300 miles on a pair of shoes
)

// benchPlatform is what a device is.
type benchPlatform uint8

const (
	platformIOS benchPlatform = iota
	platformAndroid
	platformWeb
)

// benchApp is which of the two apps sent a message.
type benchApp uint8

const (
	appKicks benchApp = iota // the shoe shop (its web site on the web)
	appRuns                  // the running app, on a phone
)

// benchDevice is one device of a person, with the anonymousIds of the apps
// installed on it. runAnon is set on a runner's first phone only.
type benchDevice struct {
	platform benchPlatform
	id       string // "" on the web
	anon     string
	runAnon  string
}

// benchPerson is one simulated customer.
type benchPerson struct {
	index     int
	kind      benchKind
	userID    string
	email     string
	firstName string
	km        bool // logs runs in kilometres
	abandons  bool // leaves a cart at the end of their story
	devices   []benchDevice
}

// benchProduct is one article of the SegKicks catalogue.
type benchProduct struct {
	id, name, category string
	price              float64
}

// benchCatalogue is what SegKicks sells; the first five are shoes. One name
// holds quotes, so JSON escaping is exercised as in the sample data.
var benchCatalogue = [...]benchProduct{
	{"shoe-a", "ShoeA", "Shoes", 120},
	{"shoe-b", "ShoeB", "Shoes", 135},
	{"shoe-c", "ShoeC", "Shoes", 150},
	{"shoe-d", "ShoeD", "shoes", 99},
	{"shoe-e", `Trail, "Grip" E`, "Shoes", 160},
	{"sock-1", "Running Socks", "Socks", 12},
	{"cap-1", "Cap", "Apparel", 25},
}

const benchShoes = 5 // benchCatalogue[:benchShoes] are shoes

var benchFirstNames = [...]string{"jane", "sam", "alex", "maria", "li", "omar",
	"ada", "tom", "nina", "raj", "eva", "kofi"}

// mix64 is SplitMix64's finaliser: a bijection on uint64 that scatters
// bits, so distinct inputs give distinct, random-looking ids.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// benchID is an identifier of a person: prefix and 16 hex digits that no
// other person of the same seed has for the same slot.
func benchID(prefix string, seed uint64, index, slot int) string {
	h := mix64(mix64(seed) + uint64(index)*8 + uint64(slot))
	buf := make([]byte, 0, len(prefix)+16)
	buf = append(buf, prefix...)
	hex := strconv.AppendUint(nil, h, 16)
	for range 16 - len(hex) {
		buf = append(buf, '0')
	}
	return string(append(buf, hex...))
}

// newBenchPerson derives person index of the population of seed.
func newBenchPerson(seed uint64, index int) benchPerson {
	rng := rand.New(rand.NewPCG(mix64(seed), uint64(index)))
	p := benchPerson{index: index, kind: pickKind(rng.IntN(100))}
	p.firstName = benchFirstNames[rng.IntN(len(benchFirstNames))]
	p.userID = benchID("usr_", seed, index, 0)
	p.email = p.firstName + "." + benchID("", seed, index, 1)[:16] + "@example.com"
	p.km = rng.IntN(4) == 0
	p.abandons = p.kind == kindShopper && rng.IntN(3) == 0

	devices := 1
	if p.kind != kindVisitor {
		devices += rng.IntN(5) / 2 // 1: 40 %, 2: 40 %, 3: 20 %
	}
	p.devices = make([]benchDevice, devices)
	for i := range p.devices {
		d := &p.devices[i]
		d.platform = pickPlatform(rng, i == 0 && p.runs())
		d.anon = benchID("anon_", seed, index, 2+i)
		if d.platform != platformWeb {
			prefix := "ios_"
			if d.platform == platformAndroid {
				prefix = "and_"
			}
			d.id = benchID(prefix, seed, index, 5+i)
		}
	}
	if p.runs() {
		p.devices[0].runAnon = benchID("anon_", seed, index, 7)
	}
	return p
}

func pickKind(r int) benchKind {
	switch {
	case r < 15:
		return kindVisitor
	case r < 70:
		return kindShopper
	case r < 92:
		return kindRunner
	default:
		return kindHeavyRunner
	}
}

// pickPlatform picks a device: a phone when phone is true (SegRuns needs
// one), else an iPhone, an Android phone or the web.
func pickPlatform(rng *rand.Rand, phone bool) benchPlatform {
	n := 30
	if phone {
		n = 20
	}
	switch v := rng.IntN(n); {
	case v < 11:
		return platformIOS
	case v < 20:
		return platformAndroid
	default:
		return platformWeb
	}
}

// runs says whether the person uses SegRuns.
func (p *benchPerson) runs() bool {
	return p.kind == kindRunner || p.kind == kindHeavyRunner
}

// identified says whether the person ever signs in.
func (p *benchPerson) identified() bool { return p.kind != kindVisitor }

// benchStepKind is what one message says.
type benchStepKind uint8

const (
	stepAppOpened benchStepKind = iota // a page call on the web
	stepViewed
	stepAdded
	stepRemoved
	stepIdentify
	stepOrder
	stepWorkout
)

// benchStep is one message of a person's story before it is encoded.
type benchStep struct {
	kind     benchStepKind
	device   uint8
	app      benchApp
	signedIn bool // carries the userId
	product  int8
	product2 int8 // a second article of an order; -1 for none
	distance float64
	seconds  int
	at       time.Time
}

// channels counts where a person sends from: the shop on every device and
// SegRuns on a runner's first phone. Each needs one identify to join the
// person's profile.
func (p *benchPerson) channels() int {
	if p.runs() {
		return len(p.devices) + 1
	}
	return len(p.devices)
}

// minSteps is the shortest story that makes the person one profile with
// every identifier: an identify on each channel, or one anonymous visit.
func (p *benchPerson) minSteps() int {
	if !p.identified() {
		return 1
	}
	return p.channels()
}

// weight is the person's share of the messages beyond minSteps.
func (p *benchPerson) weight() uint64 {
	switch p.kind {
	case kindVisitor:
		return 1
	case kindShopper:
		return 3
	case kindRunner:
		return 10
	default:
		return 60
	}
}

func (p *benchPerson) workout(rng *rand.Rand, at time.Time) benchStep {
	miles := 3 + rng.Float64()*7 // 3 to 10 miles
	if p.kind == kindHeavyRunner {
		miles = 5 + rng.Float64()*6 // 5 to 11: 300 miles in about 40 runs
	}
	st := benchStep{kind: stepWorkout, app: appRuns, signedIn: true, at: at,
		seconds: int(miles * float64(480+rng.IntN(180)))}
	st.distance = miles
	if p.km {
		st.distance = miles / 0.621371192237334
	}
	st.distance = float64(int(st.distance*100)) / 100
	return st
}

// shopStep is a step in the shop on device, signed in or not.
func shopStep(kind benchStepKind, device int, signedIn bool, product int) benchStep {
	return benchStep{kind: kind, device: uint8(device), app: appKicks, signedIn: signedIn,
		product: int8(product), product2: -1}
}

// visit appends the messages of one visit at time at to steps: a browse,
// a sign-in, an order, a cart change or a run, mixed as live traffic is.
// The load generator's traffic is a stream of visits of random people.
func (p *benchPerson) visit(rng *rand.Rand, steps []benchStep, at time.Time) []benchStep {
	start := len(steps)
	device := rng.IntN(len(p.devices))
	signedIn := p.identified() && rng.IntN(10) < 6
	product := rng.IntN(len(benchCatalogue))
	r := rng.IntN(100)
	switch {
	case r < 40 && p.runs():
		steps = append(steps, p.workout(rng, at))
	case r < 10 && p.identified():
		steps = append(steps, shopStep(stepIdentify, device, true, 0))
	case r < 25 && p.identified():
		order := shopStep(stepOrder, device, true, product)
		if rng.IntN(3) == 0 {
			order.product2 = int8((product + 1 + rng.IntN(len(benchCatalogue)-1)) %
				len(benchCatalogue))
		}
		steps = append(steps, order)
	case r < 35:
		steps = append(steps, shopStep(stepAdded, device, signedIn, product))
		if rng.IntN(4) == 0 {
			steps = append(steps, shopStep(stepRemoved, device, signedIn, product))
		}
	default:
		steps = append(steps, shopStep(stepAppOpened, device, signedIn, product))
		for range 1 + rng.IntN(3) {
			steps = append(steps, shopStep(stepViewed, device, signedIn, product))
			product = rng.IntN(len(benchCatalogue))
		}
	}
	for i := start; i < len(steps); i++ {
		steps[i].at = at
		at = at.Add(time.Duration(15+rng.IntN(165)) * time.Second)
	}
	return steps
}

// story returns the person's whole history for the seeder: n messages
// (at least minSteps) in time order between start and end. A person who
// signs in first browses anonymously on a device, then identifies on every
// device and app, so all their messages end on one profile; a runner buys
// shoes before running; a person who abandons ends with a cart add in the
// last five days.
func (p *benchPerson) story(rng *rand.Rand, n int, start, end time.Time) []benchStep {
	steps := make([]benchStep, 0, n)
	if !p.identified() {
		for len(steps) < n {
			steps = p.browse(rng, steps, 0, false, n-len(steps))
		}
		return p.stamp(rng, steps, start, end)
	}
	spare := n - p.channels()
	if p.abandons && spare > 0 {
		spare-- // the last step is the abandoned add
	}
	for c := range p.channels() {
		if spare > 0 && rng.IntN(2) == 0 && c < len(p.devices) {
			steps = append(steps, shopStep(stepViewed, c, false, rng.IntN(len(benchCatalogue))))
			spare--
		}
		steps = append(steps, p.identify(c))
		if c == 0 && p.runs() && spare > 0 {
			steps = append(steps, shopStep(stepOrder, 0, true, rng.IntN(benchShoes)))
			spare--
		}
	}
	for spare > 0 {
		before := len(steps)
		if p.runs() && rng.IntN(5) > 0 {
			steps = append(steps, p.workout(rng, time.Time{}))
		} else {
			steps = p.shop(rng, steps, spare)
		}
		spare -= len(steps) - before
	}
	if len(steps) < n {
		device := rng.IntN(len(p.devices))
		steps = append(steps, shopStep(stepAdded, device, true, rng.IntN(len(benchCatalogue))))
	}
	return p.stamp(rng, steps, start, end)
}

// identify is the sign-in on channel c: the shop on device c, or SegRuns on
// the first phone after the last device.
func (p *benchPerson) identify(c int) benchStep {
	if c == len(p.devices) {
		return benchStep{kind: stepIdentify, app: appRuns, signedIn: true, product2: -1}
	}
	return shopStep(stepIdentify, c, true, 0)
}

// browse appends an anonymous or signed-in look around the shop of at most
// limit messages.
func (p *benchPerson) browse(rng *rand.Rand, steps []benchStep, device int,
	signedIn bool, limit int) []benchStep {
	steps = append(steps, shopStep(stepAppOpened, device, signedIn, 0))
	for range min(limit-1, rng.IntN(3)) {
		steps = append(steps, shopStep(stepViewed, device, signedIn,
			rng.IntN(len(benchCatalogue))))
	}
	return steps
}

// shop appends a signed-in shopping step of at most limit messages: a
// browse, an add to the cart that is bought or removed, or not. Runners buy
// only socks and caps here, so their mileage counts from their first shoes.
func (p *benchPerson) shop(rng *rand.Rand, steps []benchStep, limit int) []benchStep {
	device := rng.IntN(len(p.devices))
	product := rng.IntN(len(benchCatalogue))
	if p.runs() {
		product = benchShoes + rng.IntN(len(benchCatalogue)-benchShoes)
	}
	r := rng.IntN(10)
	switch {
	case r < 4 || limit < 2:
		return p.browse(rng, steps, device, true, limit)
	case r < 8:
		steps = append(steps, shopStep(stepAdded, device, true, product))
		return append(steps, shopStep(stepOrder, device, true, product))
	case r < 9:
		steps = append(steps, shopStep(stepAdded, device, true, product))
		return append(steps, shopStep(stepRemoved, device, true, product))
	default:
		return append(steps, shopStep(stepAdded, device, true, product))
	}
}

// stamp gives the steps increasing times between start and two hours
// before end; an abandoner's last step (the abandoned add) lies between
// five days and two hours before end.
func (p *benchPerson) stamp(rng *rand.Rand, steps []benchStep, start,
	end time.Time) []benchStep {
	last := end.Add(-2 * time.Hour)
	n := len(steps)
	if p.abandons && n > 1 {
		last = last.Add(-time.Duration(rng.Int64N(int64(5*24*time.Hour - 2*time.Hour))))
		steps[n-1].at = last
		n--
	}
	span := last.Sub(start)
	if span <= 0 {
		span = time.Minute
	}
	offsets := make([]int64, n)
	for i := range offsets {
		offsets[i] = rng.Int64N(int64(span))
	}
	slices.Sort(offsets)
	for i, o := range offsets {
		steps[i].at = start.Add(time.Duration(o)).Truncate(time.Millisecond)
	}
	return steps
}
