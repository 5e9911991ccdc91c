#include <guestfs.h>
