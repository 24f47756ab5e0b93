package ptable

import "github.com/diskfs/go-diskfs/partition/gpt"

// gptTypeNames names the partition types a Linux or NixOS image is likely
// to hold, and the Windows ones a converted VM may carry.
var gptTypeNames = map[string]string{
	string(gpt.EFISystemPartition):         "EFI System",
	string(gpt.BIOSBoot):                   "BIOS boot",
	string(gpt.LinuxFilesystem):            "Linux filesystem",
	string(gpt.LinuxSwap):                  "Linux swap",
	string(gpt.LinuxRootX86_64):            "Linux root (x86-64)",
	string(gpt.LinuxRootX86):               "Linux root (x86)",
	string(gpt.LinuxRootArm64):             "Linux root (ARM64)",
	string(gpt.LinuxRootArm):               "Linux root (ARM)",
	"8484680C-9521-48C6-9C11-B0720656F69E": "Linux /usr (x86-64)",
	"B0E01050-EE5F-4390-949A-9101B17104E9": "Linux /usr (ARM64)",
	string(gpt.LinuxHome):                  "Linux home",
	string(gpt.LinuxServerData):            "Linux server data",
	string(gpt.LinuxExtendedBoot):          "Linux extended boot",
	string(gpt.LinuxLVM):                   "Linux LVM",
	string(gpt.LinuxRAID):                  "Linux RAID",
	string(gpt.LinuxLUKS):                  "Linux LUKS",
	string(gpt.LinuxDMCrypt):               "Linux dm-crypt",
	string(gpt.LinuxReserved):              "Linux reserved",
	"4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux variable data",
	"7EC6F557-3BC5-4ACA-B293-16EF5DF639D1": "Linux temporary data",
	string(gpt.MicrosoftBasicData):         "Microsoft basic data",
	string(gpt.MicrosoftReserved):          "Microsoft reserved",
	string(gpt.MicrosoftWindowsRecovery):   "Windows recovery",
}

// mbrTypeNames names common MBR partition type bytes.
var mbrTypeNames = map[byte]string{
	0x01: "FAT12",
	0x04: "FAT16 <32M",
	0x05: "Extended",
	0x06: "FAT16",
	0x07: "NTFS/exFAT",
	0x0b: "W95 FAT32",
	0x0c: "W95 FAT32 (LBA)",
	0x0e: "W95 FAT16 (LBA)",
	0x0f: "W95 Extended (LBA)",
	0x82: "Linux swap",
	0x83: "Linux",
	0x85: "Linux extended",
	0x8e: "Linux LVM",
	0xa5: "FreeBSD",
	0xee: "GPT protective",
	0xef: "EFI System",
	0xfd: "Linux RAID",
}
