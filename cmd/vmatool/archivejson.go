package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// ArchiveDoc is what info, list and verify say about an archive in
// --json, one type for the three so that a script reads any of them the
// same way (the README's "JSON output" section documents it). Each
// command embeds it and adds its own fields beside it. It is exported
// only because encoding/json cannot fill an embedded pointer to an
// unexported type, which the tests' reading of info --json needs.
type ArchiveDoc struct {
	UUID string `json:"uuid"`
	// Ctime is the creation time in RFC 3339, UTC; CtimeUnix the same in
	// seconds since the epoch, as the archive stores it.
	Ctime       string       `json:"ctime"`
	CtimeUnix   int64        `json:"ctime_unix"`
	Compression string       `json:"compression"` // none, zstd, gzip, lzop or bzip2
	Configs     []configDoc  `json:"configs"`
	Devices     []archiveDev `json:"devices"`
}

type configDoc struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// archiveDev is one device of an archive.
type archiveDev struct {
	ID   int    `json:"id"` // dev_id, as "vmatool list" prints it
	Name string `json:"name"`
	Size int64  `json:"size"`
	// StoredBytes counts the 4 KiB blocks the archive holds for the
	// device; the rest reads as zeros. Every command that prints the
	// document has read the whole archive.
	StoredBytes int64 `json:"stored_bytes"`
	VMState     bool  `json:"vmstate,omitempty"`
}

// newArchiveDoc describes the archive a has read to its end.
func newArchiveDoc(a *archiveInput) *ArchiveDoc {
	h := a.reader.Header()
	doc := &ArchiveDoc{
		UUID: h.UUID.String(), Ctime: h.Ctime.UTC().Format(time.RFC3339), CtimeUnix: h.Ctime.Unix(),
		Compression: string(a.comp), Configs: []configDoc{}, Devices: []archiveDev{},
	}
	if doc.Compression == "" {
		doc.Compression = string(vma.None)
	}
	for _, c := range h.Configs {
		doc.Configs = append(doc.Configs, configDoc{Name: c.Name, Size: len(c.Data)})
	}
	for _, d := range h.Devices {
		doc.Devices = append(doc.Devices, archiveDev{ID: d.ID, Name: d.Name, Size: d.Size,
			StoredBytes: a.reader.StoredBytes(d.ID), VMState: d.IsVMState()})
	}
	return doc
}

// totals sums the devices' sizes and stored bytes.
func (d *ArchiveDoc) totals() (size, stored int64) {
	for _, x := range d.Devices {
		size += x.Size
		stored += x.StoredBytes
	}
	return size, stored
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
