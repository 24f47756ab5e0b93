package qcow2

import (
	"container/list"
	"sync"
)

// minCachedTables keeps the L2 cache useful when a small cache size meets
// large clusters: a read that crosses a table boundary needs two.
const minCachedTables = 4

// tableKey names an L2 table: which image of the chain, and where.
type tableKey struct {
	image uint32
	off   int64
}

type tableEntry struct {
	key   tableKey
	table []byte
}

// l2Cache is an LRU of L2 tables shared by a backing chain, bounded in
// bytes. Tables are never modified or reused after insertion, so a reader
// may keep using one after it is evicted.
type l2Cache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	lru    *list.List // front is most recent; values are *tableEntry
	byKey  map[tableKey]*list.Element
}

func newL2Cache(budget int64) *l2Cache {
	return &l2Cache{budget: budget, lru: list.New(), byKey: make(map[tableKey]*list.Element)}
}

func (c *l2Cache) get(k tableKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*tableEntry).table
	}
	return nil
}

func (c *l2Cache) put(k tableKey, t []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return // another reader loaded it meanwhile
	}
	size := int64(len(t))
	for c.lru.Len() > 0 && c.used+size > max(c.budget, minCachedTables*size) {
		old := c.lru.Remove(c.lru.Back()).(*tableEntry)
		delete(c.byKey, old.key)
		c.used -= int64(len(old.table))
	}
	c.byKey[k] = c.lru.PushFront(&tableEntry{key: k, table: t})
	c.used += size
}

// clusterCacheSlots is how many decompressed clusters are kept for reads
// that cover only part of a cluster. Two sequential readers whose chunk
// boundaries cut clusters (a 3.7 MiB buffer over 2 MiB clusters) each need
// one, and the slots are few because a cluster can be 2 MiB.
const clusterCacheSlots = 4

type clusterKey struct {
	image uint32
	entry uint64 // the compressed L2 entry: where the data is and how long
}

// clusterCache keeps the last few decompressed clusters so that reads
// smaller than a cluster, or chunk boundaries inside one, do not
// decompress the same cluster again.
type clusterCache struct {
	mu    sync.Mutex
	next  int
	slots [clusterCacheSlots]struct {
		key   clusterKey
		valid bool
		data  []byte
	}
}

// copyOut copies cluster k from off into dst if it is cached.
func (c *clusterCache) copyOut(k clusterKey, dst []byte, off int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		s := &c.slots[i]
		if s.valid && s.key == k {
			copy(dst, s.data[off:])
			return true
		}
	}
	return false
}

// put stores a copy of a decompressed cluster, replacing the oldest.
func (c *clusterCache) put(k clusterKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[c.next]
	c.next = (c.next + 1) % clusterCacheSlots
	if cap(s.data) < len(data) {
		s.data = make([]byte, len(data))
	}
	s.data = s.data[:len(data)]
	copy(s.data, data)
	s.key, s.valid = k, true
}
