module github.com/vmatool/vmatool

go 1.26.0

require (
	github.com/anchore/go-lzo v0.1.1
	github.com/diskfs/go-diskfs v1.9.4
	github.com/google/btree v1.1.3
	github.com/google/uuid v1.6.0
	github.com/kevinburke/ssh_config v1.6.0
	github.com/klauspost/compress v1.20.3
	github.com/klauspost/pgzip v1.3.0
	github.com/luthermonson/go-proxmox v0.9.0
	github.com/spf13/pflag v1.0.10
	golang.org/x/crypto v0.58.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require (
	github.com/buger/goterm v1.0.4 // indirect
	github.com/djherbis/times v1.6.0 // indirect
	github.com/gorilla/websocket v1.4.2 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/jinzhu/copier v0.3.4 // indirect
	github.com/magefile/mage v1.14.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
)
