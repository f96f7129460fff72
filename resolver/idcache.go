package resolver

// identityCache mirrors, for one ingest transaction, the identities rows
// the transaction has read or written, so that a batch reads each
// identifier and each profile's identifiers once instead of once a message.
// It is right only while nothing else writes identities: the writer holds
// the write lock, and an erase in the middle of a batch starts a new cache.
type identityCache struct {
	owner   map[Identifier]int64           // identifiers known to be held
	free    map[Identifier]bool            // identifiers known to be held by none
	held    map[int64][]*heldIdentifier    // every identifier of a profile, when known
	merges  map[int64]int                  // profiles merged into a profile, when known
	byValue map[Identifier]*heldIdentifier // the entries of held, by identifier
}

func newIdentityCache() *identityCache {
	return &identityCache{
		owner:   map[Identifier]int64{},
		free:    map[Identifier]bool{},
		held:    map[int64][]*heldIdentifier{},
		merges:  map[int64]int{},
		byValue: map[Identifier]*heldIdentifier{},
	}
}

// lookup says who holds id: (profile, true) when known held, (0, true)
// when known free, (0, false) when the database must be asked.
func (c *identityCache) lookup(id Identifier) (int64, bool) {
	if profile, ok := c.owner[id]; ok {
		return profile, true
	}
	return 0, c.free[id]
}

// learnOwners records what a lookup of asked found: owners of the found
// ones, and that the rest are held by none.
func (c *identityCache) learnOwners(asked []Identifier, found map[Identifier]int64) {
	for _, id := range asked {
		if profile, ok := found[id]; ok {
			c.owner[id] = profile
		} else {
			c.free[id] = true
		}
	}
}

// profileIdentifiers returns profile's identifiers when the cache holds
// all of them.
func (c *identityCache) profileIdentifiers(profile int64) ([]*heldIdentifier, bool) {
	list, ok := c.held[profile]
	return list, ok
}

// learnProfiles records the complete identifier lists of profiles, as
// just read from the database.
func (c *identityCache) learnProfiles(profiles []int64, rows []heldIdentifier) {
	for _, p := range profiles {
		c.held[p] = []*heldIdentifier{}
	}
	for _, row := range rows {
		entry := c.byValue[row.Identifier]
		if entry == nil {
			entry = &heldIdentifier{Identifier: row.Identifier}
			c.byValue[row.Identifier] = entry
		}
		*entry = row
		c.held[row.profile] = append(c.held[row.profile], entry)
		c.owner[row.Identifier] = row.profile
		delete(c.free, row.Identifier)
	}
}

// newProfile records a profile made in this transaction: nothing on it yet.
func (c *identityCache) newProfile(profile int64) {
	c.held[profile] = []*heldIdentifier{}
	c.merges[profile] = 0
}

// added records an identifier attached to profile, seen at atMS.
func (c *identityCache) added(profile int64, id Identifier, atMS int64) {
	delete(c.free, id)
	c.owner[id] = profile
	list, known := c.held[profile]
	if !known {
		return // the profile's list is read whole when first needed
	}
	entry := &heldIdentifier{Identifier: id, profile: profile, lastSeenMS: atMS}
	c.held[profile] = append(list, entry)
	c.byValue[id] = entry
}

// lastSeen returns when id was last seen, when the cache knows.
func (c *identityCache) lastSeen(id Identifier) (int64, bool) {
	entry := c.byValue[id]
	if entry == nil {
		return 0, false
	}
	return entry.lastSeenMS, true
}

// seen records that id was seen at atMS, as the UPDATE of last_seen_ms
// does: only ever later.
func (c *identityCache) seen(id Identifier, atMS int64) {
	if entry := c.byValue[id]; entry != nil && entry.lastSeenMS < atMS {
		entry.lastSeenMS = atMS
	}
}

// merged records that merged was folded into survivor: its identifiers
// and its earlier merges move over.
func (c *identityCache) merged(survivor, merged int64) {
	for id, profile := range c.owner {
		if profile == merged {
			c.owner[id] = survivor
		}
	}
	theirs, theirsKnown := c.held[merged]
	mine, mineKnown := c.held[survivor]
	for _, entry := range theirs {
		entry.profile = survivor
	}
	if theirsKnown && mineKnown {
		c.held[survivor] = append(mine, theirs...)
	} else {
		delete(c.held, survivor)
	}
	c.held[merged] = []*heldIdentifier{}

	theirMerges, a := c.merges[merged]
	myMerges, b := c.merges[survivor]
	if a && b {
		c.merges[survivor] = myMerges + 1 + theirMerges
	} else {
		delete(c.merges, survivor)
	}
	c.merges[merged] = 0
}
