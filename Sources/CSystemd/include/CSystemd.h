#ifndef MULTIVERSE_CSYSTEMD_H
#define MULTIVERSE_CSYSTEMD_H
/*
 * sd-bus for Swift: its headers, and the vtable entries Swift cannot build itself (C
 * macros with bit-fields) with their flag values. Nothing else: the libc gaps are in
 * CLinux, so a module links libsystemd only when it speaks D-Bus.
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

#endif
