package main

import "unicode/utf8"

// tempStem shortens an output's base name so that its temporary name,
// "." + stem + ".tmp-" + 12 hex digits, stays within the 255 bytes a file
// name may have: an archive's names may use all 255 (vma.Header.CheckNames),
// and the temporary name must not be what makes an unpack fail. It cuts at
// a UTF-8 boundary; the random suffix keeps shortened names apart.
func tempStem(base string) string {
	const room = 255 - len(".") - len(".tmp-") - 12
	if len(base) <= room {
		return base
	}
	cut := room
	for cut > 0 && !utf8.RuneStart(base[cut]) {
		cut--
	}
	return base[:cut]
}
