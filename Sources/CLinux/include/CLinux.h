#ifndef MULTIVERSE_CLINUX_H
#define MULTIVERSE_CLINUX_H
/*
 * The Linux and glibc calls Swift cannot make itself: variadic ioctl, headers that are
 * not part of Swift's Glibc module (<malloc.h>, <sys/eventfd.h>), GNU extensions. One
 * small function each, named mv_*; no library is linked.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

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

/* lgetxattr(2), lsetxattr(2) (flags 0) and lremovexattr(2) on a path, never following a
 * symlink: <sys/xattr.h> is not part of Swift's Glibc module. As the calls return. */
ssize_t mv_get_xattr(const char *path, const char *name, void *value, size_t size);
int mv_set_xattr(const char *path, const char *name, const void *value, size_t size);
int mv_remove_xattr(const char *path, const char *name);

/* The calling thread's kernel id (glibc's gettid() needs _GNU_SOURCE). */
pid_t mv_gettid(void);

/* pidfd_open(2) (glibc 2.36 has no wrapper): a descriptor that polls readable once the
 * process has exited, for a process that is not our child. -1 and errno on failure. */
int mv_pidfd_open(pid_t pid);

/* pidfd_send_signal(2): signals the process the pidfd was opened for, never another that
 * reused its pid. -1 and errno (ESRCH once it has exited) on failure. */
int mv_pidfd_send_signal(int pidfd, int sig);

/* prctl(PR_SET_NO_NEW_PRIVS, 1): nothing this process executes gains privileges (setuid
 * bits, file capabilities). prctl is variadic, which Swift cannot call. 0 or -1. */
int mv_set_no_new_privs(void);

/* An open file description lock (F_OFD_SETLK, a GNU extension Swift's Glibc module does not
 * show) on the one byte at `offset`: shared (`exclusive` 0) or exclusive, never waiting.
 * 0, or -1 with errno (EAGAIN when another open file holds a conflicting lock). */
int mv_ofd_lock_byte(int fd, long long offset, int exclusive);

/* F_OFD_GETLK for an exclusive lock on the byte at `offset`: 1 when another open file holds
 * a lock there, 0 when none does, -1 with errno. */
int mv_ofd_byte_locked(int fd, long long offset);

#endif
