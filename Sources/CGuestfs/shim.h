#include <guestfs.h>

/* The optional-argument bitmasks are UINT64_C(1)<<n macros, which Swift cannot import;
   re-export the ones the Guestfs module uses as constants. */
static const uint64_t mv_add_drive_readonly = GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK;
static const uint64_t mv_add_drive_format = GUESTFS_ADD_DRIVE_OPTS_FORMAT_BITMASK;
static const uint64_t mv_mkfs_label = GUESTFS_MKFS_OPTS_LABEL_BITMASK;
static const uint64_t mv_xfs_growfs_datasec = GUESTFS_XFS_GROWFS_DATASEC_BITMASK;
static const uint64_t mv_btrfs_resize_size = GUESTFS_BTRFS_FILESYSTEM_RESIZE_SIZE_BITMASK;
static const uint64_t mv_add_drive_protocol = GUESTFS_ADD_DRIVE_OPTS_PROTOCOL_BITMASK;
static const uint64_t mv_add_drive_server = GUESTFS_ADD_DRIVE_OPTS_SERVER_BITMASK;
