package pvesim

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// multipartUpload is an upload as pveproxy hands it to the API handler:
// the form fields it extracted and the file's bytes.
type multipartUpload struct {
	params url.Values
	data   []byte
}

// headWindow is how much of an upload the field parsing looks at: about
// what pveproxy has read when it parses them.
const headWindow = 64 << 10

// plainError is an error pveproxy itself answers, with a text body.
func plainError(status int, msg string) *apiError {
	return &apiError{status: status, message: msg, plain: true}
}

// readUpload parses an upload the way pve-http-server
// src/PVE/APIServer/AnyEvent.pm does (file_upload_multipart): it needs a
// Content-Length and no chunked encoding, then takes the fields content,
// checksum-algorithm and checksum in that order, then the file part, which
// must be named "filename" and is read up to the closing boundary. A field
// out of that order is skipped over, and anything after the file part
// becomes part of the file, as with the real parser.
func readUpload(r *http.Request) (*multipartUpload, *apiError) {
	for _, te := range r.TransferEncoding {
		if strings.EqualFold(te, "chunked") {
			// Read what the client sends before answering, so that it
			// gets the status rather than a reset connection mid-write
			// (which made the test of this answer fail at random).
			io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
			return nil, plainError(http.StatusNotImplemented, "chunked transfer encoding not supported")
		}
	}
	ct := r.Header.Get("Content-Type")
	mt, mp, err := mime.ParseMediaType(ct)
	boundary := mp["boundary"]
	if err != nil || mt != "multipart/form-data" || boundary == "" {
		return nil, plainError(http.StatusInternalServerError, "upload 'Content-Type '"+ct+"' not implemented")
	}
	if r.ContentLength <= 0 {
		return nil, plainError(http.StatusInternalServerError, "upload without content length header not supported")
	}
	q := r.URL.Query()
	if q.Has("tmpfilename") {
		return nil, plainError(http.StatusInternalServerError, "'tmpfilename' query parameter is not allowed for file uploads")
	}
	buf, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, plainError(http.StatusInternalServerError, "upload failed")
	}
	b := regexp.QuoteMeta(boundary)
	delim := `--` + b + `\r?\n`
	failed := plainError(http.StatusInternalServerError, "upload failed")

	// Phase 0: drop anything before the first boundary.
	m := regexp.MustCompile(`(?s)^.*?(` + delim + `)`).FindSubmatchIndex(buf)
	if m == nil {
		return nil, failed
	}
	buf = buf[m[2]:]
	untilData := regexp.MustCompile(`(?s)^.*?(?:\r?\n){2}`)
	// pveproxy runs these expressions on what it has read so far, so the
	// fields and the file's part header are found near the start: search
	// a window, not the whole file.
	head := func() []byte { return buf[:min(len(buf), headWindow)] }
	// Phase 1: the fields, each optional, in this order.
	for _, name := range []string{"content", "checksum-algorithm", "checksum"} {
		re := regexp.MustCompile(`(?s)^` + delim + `.*?Content-Disposition: (.*?); name="` + regexp.QuoteMeta(name) + `"(.*?` + delim + `)`)
		m := re.FindSubmatchIndex(head())
		if m == nil {
			continue
		}
		if disp := string(buf[m[2]:m[3]]); disp != "form-data" {
			return nil, plainError(http.StatusInternalServerError, "wrong Content-Disposition '"+disp+"' in multipart, expected 'form-data'")
		}
		buf = buf[m[4]:]
		if m := untilData.FindIndex(head()); m != nil {
			buf = buf[m[1]:]
		}
		v := regexp.MustCompile(`(?s)^(.*?)(` + delim + `)`).FindSubmatchIndex(head())
		if v == nil {
			return nil, failed
		}
		q.Set(name, strings.TrimSpace(string(buf[v[2]:v[3]])))
		buf = buf[v[4]:]
	}
	m = regexp.MustCompile(`(?s)^` + delim + `Content-Disposition: (.*?); name="(.*?)"; filename="([^"]+)"`).FindSubmatchIndex(head())
	if m == nil {
		return nil, failed
	}
	if disp := string(buf[m[2]:m[3]]); disp != "form-data" {
		return nil, plainError(http.StatusInternalServerError, "wrong Content-Disposition '"+disp+"' in multipart, expected 'form-data'")
	}
	if field := string(buf[m[4]:m[5]]); field != "filename" {
		return nil, plainError(http.StatusInternalServerError, "wrong field name '"+field+"' for file upload, expected 'filename'")
	}
	q.Set("filename", strings.TrimSpace(string(buf[m[6]:m[7]])))
	buf = buf[m[1]:]
	if m := untilData.FindIndex(head()); m != nil {
		buf = buf[m[1]:]
	}
	// Phase 2: the file runs to the first closing boundary, less the
	// newline before it.
	end := bytes.Index(buf, []byte("--"+boundary+"--"))
	if end < 0 {
		return nil, failed
	}
	data := buf[:end]
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	return &multipartUpload{params: q, data: data}, nil
}

var (
	// pve-storage src/PVE/Storage.pm ISO_EXT_RE_0, VZTMPL_EXT_RE_1,
	// SAFE_CHAR_CLASS_RE and UPLOAD_IMPORT_EXT_RE_1; before 8.4 only .ova
	// could be uploaded as import.
	isoRE         = regexp.MustCompile(`(?i)[^/]+\.(?:iso|img)$`)
	vztmplRE      = regexp.MustCompile(`[^/]+\.tar\.(?:gz|xz|zst|bz2)$`)
	uploadImport  = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$`)
	uploadImport3 = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(ova)$`)
)

var checksums = map[string]func() hash.Hash{"md5": md5.New, "sha1": sha1.New, "sha224": sha256.New224,
	"sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New}

// upload is POST /nodes/{node}/storage/{storage}/upload as pve-storage
// src/PVE/API2/Storage/Status.pm handles it: the parameter and storage
// checks up front, then an "imgcopy" task that verifies the checksum and
// the image and moves the file into place.
func (s *Server) upload(nodeName, storageName string, up *multipartUpload) (any, *apiError) {
	p := up.params
	content, filename := p.Get("content"), p.Get("filename")
	switch {
	case content == "":
		return nil, paramError("content", "property is missing and it is not optional")
	case filename == "":
		return nil, paramError("filename", "property is missing and it is not optional")
	case p.Get("checksum") != "" && p.Get("checksum-algorithm") == "":
		return nil, paramError("checksum-algorithm", "missing property required by 'checksum'")
	case p.Get("checksum-algorithm") != "" && p.Get("checksum") == "":
		return nil, paramError("checksum", "missing property required by 'checksum-algorithm'")
	}
	algo := p.Get("checksum-algorithm")
	if algo != "" && checksums[algo] == nil {
		return nil, paramError("checksum-algorithm", "value '"+algo+"' does not have a value in the enumeration 'md5, sha1, sha224, sha256, sha384, sha512'")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(nodeName)
	if n == nil {
		return nil, errorf(http.StatusInternalServerError,
			"hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", nodeName, nodeName)
	}
	enum := "iso, vztmpl, import"
	if !s.versionAtLeast(8, 3) {
		enum = "iso, vztmpl"
	}
	if !strings.Contains(", "+enum+",", ", "+content+",") {
		return nil, paramError("content", "value '"+content+"' does not have a value in the enumeration '"+enum+"'")
	}
	st := n.storage(storageName)
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", storageName)
	}
	if !fileBased(st) {
		return nil, errorf(http.StatusInternalServerError, "can't upload to storage type '%s'", st.typ)
	}
	format := ""
	switch content {
	case "iso":
		if !isoRE.MatchString(filename) {
			return nil, paramError("filename", "wrong file extension")
		}
	case "vztmpl":
		if !vztmplRE.MatchString(filename) {
			return nil, paramError("filename", "wrong file extension")
		}
	case "import":
		re := uploadImport
		if !s.versionAtLeast(8, 4) {
			re = uploadImport3
		}
		m := re.FindStringSubmatch(filename)
		if m == nil {
			return nil, paramError("filename", "invalid filename or wrong extension")
		}
		format = m[1]
	}
	if !st.holds(content) {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not support '%s' content", storageName, content)
	}
	volid := st.name + ":" + content + "/" + filename
	sum := md5.Sum(up.data)
	tmp := "/var/tmp/pveupload-" + hex.EncodeToString(sum[:])
	dest := "/var/lib/vz/" + content + "/" + filename
	t := s.newTask(n.name, "imgcopy", "")
	t.finish = func() (string, []string) {
		log := []string{"starting file import from: " + tmp}
		if algo != "" {
			h := checksums[algo]()
			h.Write(up.data)
			got := hex.EncodeToString(h.Sum(nil))
			if !strings.EqualFold(got, p.Get("checksum")) {
				return "checksum mismatch: got '" + got + "' != expect '" + p.Get("checksum") + "'", append(log, "calculating checksum...")
			}
			log = append(log, "calculating checksum...OK, checksum verified")
		}
		if msg := checkImage(format, tmp, up.data); msg != "" && format != "ova" {
			return msg, log
		}
		st.vols[volid] = &Volume{VolID: volid, Content: content, Format: format, Size: int64(len(up.data)),
			CTime: time.Now().Unix(), Data: up.data}
		return "OK", append(log, "target node: "+n.name, "target file: "+dest, "file size is: "+itoa(len(up.data)),
			"command: cp -- "+tmp+" "+dest, "finished file import successfully")
	}
	return t.upid, nil
}

// fileBased reports whether a storage type has a path, which uploads
// need.
func fileBased(st *storage) bool {
	switch st.typ {
	case "dir", "nfs", "cifs", "glusterfs", "btrfs", "cephfs":
		return true
	}
	return st.dir != ""
}
