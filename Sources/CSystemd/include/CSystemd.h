#ifndef MULTIVERSE_CSYSTEMD_H
#define MULTIVERSE_CSYSTEMD_H
/*
 * The only hand-written C of the project: sd-bus headers for Swift, plus the few
 * things Swift cannot express itself (vtable entries are built by C macros with
 * bit-fields; eventfd is not exported by Swift's Glibc module).
 */
#include <stdint.h>
#include <stddef.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-daemon.h>

/* Size of one vtable entry, so Swift can allocate zero-filled arrays. */
size_t mv_vtable_entry_size(void);
/* Returns a pointer to entry `index` of a vtable array allocated by Swift. */
sd_bus_vtable *mv_vtable_at(sd_bus_vtable *table, size_t index);

void mv_vtable_start(sd_bus_vtable *e, uint64_t flags);
void mv_vtable_method(sd_bus_vtable *e, const char *member, const char *signature,
                      const char *result, const char *names,
                      sd_bus_message_handler_t handler, uint64_t flags);
void mv_vtable_property(sd_bus_vtable *e, const char *member, const char *signature,
                        sd_bus_property_get_t get, sd_bus_property_set_t set,
                        uint64_t flags);
void mv_vtable_signal(sd_bus_vtable *e, const char *member, const char *signature,
                      const char *names, uint64_t flags);
void mv_vtable_end(sd_bus_vtable *e);

/* Flag values of sd-bus-vtable.h (enum values are C enums Swift imports poorly as 64-bit). */
uint64_t mv_flag_unprivileged(void);
uint64_t mv_flag_const(void);
uint64_t mv_flag_emits_change(void);
uint64_t mv_flag_emits_invalidation(void);
uint64_t mv_flag_explicit(void);

/* eventfd(2), non-blocking and close-on-exec. */
int mv_eventfd(void);

/* glibc's mallopt(M_ARENA_MAX, n): <malloc.h> is not part of Swift's Glibc module. */
int mv_limit_malloc_arenas(int arenas);

/* glibc's mallopt(M_MMAP_THRESHOLD, bytes): a fixed threshold (glibc otherwise raises it
 * after each large free, and later large buffers then stay in the heap). */
int mv_fix_malloc_mmap_threshold(int bytes);

/* glibc's malloc_trim(0): returns the free memory of every arena to the system. */
int mv_trim_malloc(void);

/* ioctl(dst_fd, FICLONE, src_fd): dst shares src's blocks (reflink; xfs, btrfs). 0, or -1
 * with errno (EOPNOTSUPP, EXDEV, EINVAL where the file system cannot). ioctl is variadic. */
int mv_clone_file(int dst_fd, int src_fd);

/* sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE): starts writing back that range
 * of the file without waiting for it (a GNU extension Swift's Glibc module does not show). */
int mv_start_writeback(int fd, long long offset, long long count);

/* pthread_setname_np(pthread_self(), name): the calling thread's name in the kernel, cut
 * to the kernel's 15 bytes without splitting a UTF-8 character (a longer name would be
 * ERANGE). A GNU extension Swift's Glibc module does not show. */
int mv_set_thread_name(const char *name);

#endif
