#define _GNU_SOURCE
#include <sys/xattr.h>
#include "CLinux.h"
#include <fcntl.h>
#include <linux/fs.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int mv_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int mv_limit_malloc_arenas(int arenas) { return mallopt(M_ARENA_MAX, arenas); }
int mv_fix_malloc_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
int mv_trim_malloc(void) { return malloc_trim(0); }

int mv_clone_file(int dst_fd, int src_fd) { return ioctl(dst_fd, FICLONE, src_fd); }

int mv_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

int mv_set_thread_name(const char *name) {
    char cut[16];
    size_t n = strnlen(name, sizeof cut - 1);
    /* Back off continuation bytes (10xxxxxx) when the cut falls inside a character. */
    if (name[n] != '\0')
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) n--;
    memcpy(cut, name, n);
    cut[n] = '\0';
    return pthread_setname_np(pthread_self(), cut);
}

pid_t mv_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int mv_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int mv_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

int mv_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

ssize_t mv_get_xattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}

int mv_set_xattr(const char *path, const char *name, const void *value, size_t size) {
    return lsetxattr(path, name, value, size, 0);
}

int mv_remove_xattr(const char *path, const char *name) {
    return lremovexattr(path, name);
}

int mv_ofd_lock_byte(int fd, long long offset, int exclusive) {
    struct flock lock = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = offset, .l_len = 1, .l_pid = 0 };
    return fcntl(fd, F_OFD_SETLK, &lock);
}

int mv_ofd_byte_locked(int fd, long long offset) {
    struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = offset, .l_len = 1, .l_pid = 0 };
    if (fcntl(fd, F_OFD_GETLK, &probe) != 0) return -1;
    return probe.l_type != F_UNLCK;
}
