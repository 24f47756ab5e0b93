#!/bin/sh
# Regenerates the qcow2 fixtures (*.gz) and manifest.json in this directory.
#
# Needs qemu-img and qemu-io (Debian: qemu-utils; made with 7.2), go, gzip,
# jq and sha256sum. The images are built in a temporary directory, so the
# backing and data file names they store are plain relative names.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

go run "$here/mkraw.go" small.raw odd.raw base2m.raw
R=small.raw
secret='--object secret,id=sec0,data=password'

conv() { qemu-img convert -f raw -O qcow2 "$@"; }
qio() { qemu-io -f qcow2 "$@" >/dev/null; }

# versions and cluster sizes
conv $R v3-64k.qcow2
conv -o compat=0.10,cluster_size=4k $R v2-4k.qcow2
conv -o cluster_size=512 $R c512.qcow2
conv -o cluster_size=2M $R c2m.qcow2
conv -o refcount_bits=1 $R refcount1.qcow2

# compression
conv -c $R zlib-64k.qcow2
conv -c -o cluster_size=512 $R zlib-512.qcow2
conv -c -o cluster_size=2M $R zlib-2m.qcow2
conv -c -o compat=0.10,cluster_size=4k $R v2-zlib-4k.qcow2
conv -c -o compression_type=zstd $R zstd-64k.qcow2
conv -c -o compression_type=zstd,cluster_size=4k $R zstd-4k.qcow2
conv -c -o compression_type=zstd,cluster_size=2M $R zstd-2m.qcow2

# extended L2: zero subclusters inside a data cluster, and a 2 KiB write
# into an empty cluster (one allocated subcluster, the rest unallocated)
conv -o extended_l2=on $R extl2-64k.qcow2
qio -c 'write -z 1056768 4k' -c 'write -P 0x33 2101248 2k' extl2-64k.qcow2
conv -c -o extended_l2=on,compression_type=zstd $R extl2-zstd.qcow2

# zero clusters: ZERO_ALLOC (write -z) and ZERO_PLAIN (write -z -u)
conv $R zero-v3.qcow2
qio -c 'write -z 0 64k' -c 'write -z -u 1048576 128k' zero-v3.qcow2
# compressed, zero and plain clusters in one L2 table
conv -c $R mixed-rw.qcow2
qio -c 'write -z 0 64k' -c 'write -z -u 1048576 64k' -c 'write -P 0x51 1114112 4k' mixed-rw.qcow2

# dirty bit (lazy refcounts, then qemu-io aborts before clearing it)
conv -o lazy_refcounts=on $R lazy-dirty.qcow2
qio -c 'write -P 0x5a 2097152 64k' -c abort lazy-dirty.qcow2 2>/dev/null || true
# preallocation: every cluster NORMAL, zero ones are file holes
conv -o preallocation=metadata $R prealloc-meta.qcow2
# internal snapshot, then the active layer changes; and a dirty bitmap
conv $R snapshot.qcow2
qemu-img snapshot -c snap1 snapshot.qcow2
qio -c 'write -P 0x77 0 64k' snapshot.qcow2
conv $R bitmap.qcow2
qemu-img bitmap --add bitmap.qcow2 bm0

# odd virtual size (4 MiB + 4608): the last cluster is partial
conv -o cluster_size=64k odd.raw odd-64k.qcow2
conv -c -o cluster_size=2M odd.raw odd-zlib-2m.qcow2

# compressed clusters whose range runs past the end of the file
qemu-img create -q -f qcow2 tail-zlib.qcow2 1M
qio -c 'write -c -P 0x11 0 64k' -c 'write -c -P 0x22 64k 64k' tail-zlib.qcow2
qemu-img create -q -f qcow2 -o compression_type=zstd tail-zstd.qcow2 1M
qio -c 'write -c -P 0x11 0 64k' tail-zstd.qcow2

# backing chains: qcow2 over qcow2 (a zero cluster hides backing data),
# two levels, a raw backing file shorter than the overlay, extended L2
conv $R chain-base.qcow2
qemu-img create -q -f qcow2 -b chain-base.qcow2 -F qcow2 chain-ov1.qcow2
qio -c 'write -P 0x61 1M 64k' -c 'write -z 1114112 64k' chain-ov1.qcow2
qemu-img create -q -f qcow2 -b chain-ov1.qcow2 -F qcow2 chain-ov2.qcow2
qio -c 'write -P 0x62 1049088 512' chain-ov2.qcow2
qemu-img create -q -f qcow2 -b base2m.raw -F raw chain-raw.qcow2 4M
qio -c 'write -P 0x64 1M 4k' -c 'write -P 0x65 3M 4k' chain-raw.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on -b chain-base.qcow2 -F qcow2 chain-extl2.qcow2
qio -c 'write -P 0x63 10240 2048' chain-extl2.qcow2

# external data file (opened only when the caller names it)
conv -o data_file=extdata.data $R extdata.qcow2
conv -o data_file=extdata-raw.data,data_file_raw=on $R extdata-raw.qcow2

# encrypted images, to be refused (aes-128 keeps the LUKS key material small)
qemu-img create -q $secret -f qcow2 -o encrypt.format=aes,encrypt.key-secret=sec0 aes.qcow2 1M
qemu-img create -q $secret -f qcow2 \
	-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.cipher-alg=aes-128 luks.qcow2 1M

# manifest.json: for each image its virtual size, the sha256 of
# "qemu-img convert -O raw", and the ranges "qemu-img map" reports as data.
# "files" lists what must sit beside it (backing and data files).
entry() { # name error files...
	name=$1 err=$2
	shift 2
	files=$(printf '%s\n' "$@" | jq -R . | jq -s 'map(select(. != ""))')
	for f in "$name" "$@"; do
		[ -f "$here/$f.gz" ] || gzip -9 -n -c "$f" >"$here/$f.gz"
	done
	if [ -n "$err" ]; then
		jq -n --arg name "$name" --arg err "$err" --argjson files "$files" \
			'{name: $name, error: $err, files: $files}'
		return
	fi
	qemu-img convert -O raw "$name" out.raw
	sum=$(sha256sum out.raw | cut -d' ' -f1)
	size=$(stat -c %s out.raw)
	rm out.raw
	qemu-img map --output=json "$name" | jq -c --arg name "$name" --arg sum "$sum" \
		--argjson size "$size" --argjson files "$files" '
		{name: $name, size: $size, sha256: $sum, files: $files,
		 data: (map(select(.data)) | reduce .[] as $e ([];
			if length > 0 and (.[-1][0] + .[-1][1]) == $e.start
			then .[-1][1] += $e.length else . + [[$e.start, $e.length]] end))}'
}

rm -f "$here"/*.gz
{
	for f in v3-64k v2-4k c512 c2m refcount1 zlib-64k zlib-512 zlib-2m v2-zlib-4k \
		zstd-64k zstd-4k zstd-2m extl2-64k extl2-zstd zero-v3 mixed-rw lazy-dirty \
		prealloc-meta snapshot bitmap odd-64k odd-zlib-2m tail-zlib tail-zstd chain-base; do
		entry $f.qcow2 ""
	done
	entry chain-ov1.qcow2 "" chain-base.qcow2
	entry chain-ov2.qcow2 "" chain-ov1.qcow2 chain-base.qcow2
	entry chain-raw.qcow2 "" base2m.raw
	entry chain-extl2.qcow2 "" chain-base.qcow2
	entry extdata.qcow2 "" extdata.data
	entry extdata-raw.qcow2 "" extdata-raw.data
	entry aes.qcow2 encrypted
	entry luks.qcow2 encrypted
} | jq -s . >"$here/manifest.json"

ls -l "$here"/*.gz | awk '{s += $5} END {print NR " files, " s " bytes"}'
