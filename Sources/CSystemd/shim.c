#define _GNU_SOURCE
#include "CSystemd.h"

size_t mv_vtable_entry_size(void) { return sizeof(sd_bus_vtable); }

sd_bus_vtable *mv_vtable_at(sd_bus_vtable *table, size_t index) { return table + index; }

void mv_vtable_start(sd_bus_vtable *e, uint64_t flags) {
    memset(e, 0, sizeof(*e));
    e->type = _SD_BUS_VTABLE_START;
    e->flags = flags;
    e->x.start.element_size = sizeof(sd_bus_vtable);
    e->x.start.features = _SD_BUS_VTABLE_PARAM_NAMES;
    e->x.start.vtable_format_reference = &sd_bus_object_vtable_format;
}

void mv_vtable_method(sd_bus_vtable *e, const char *member, const char *signature,
                      const char *result, const char *names,
                      sd_bus_message_handler_t handler, uint64_t flags) {
    memset(e, 0, sizeof(*e));
    e->type = _SD_BUS_VTABLE_METHOD;
    e->flags = flags;
    e->x.method.member = member;
    e->x.method.signature = signature;
    e->x.method.result = result;
    e->x.method.handler = handler;
    e->x.method.offset = 0;
    e->x.method.names = names;
}

void mv_vtable_property(sd_bus_vtable *e, const char *member, const char *signature,
                        sd_bus_property_get_t get, sd_bus_property_set_t set,
                        uint64_t flags) {
    memset(e, 0, sizeof(*e));
    e->type = set ? _SD_BUS_VTABLE_WRITABLE_PROPERTY : _SD_BUS_VTABLE_PROPERTY;
    e->flags = flags;
    e->x.property.member = member;
    e->x.property.signature = signature;
    e->x.property.get = get;
    e->x.property.set = set;
    e->x.property.offset = 0;
}

void mv_vtable_signal(sd_bus_vtable *e, const char *member, const char *signature,
                      const char *names, uint64_t flags) {
    memset(e, 0, sizeof(*e));
    e->type = _SD_BUS_VTABLE_SIGNAL;
    e->flags = flags;
    e->x.signal.member = member;
    e->x.signal.signature = signature;
    e->x.signal.names = names;
}

void mv_vtable_end(sd_bus_vtable *e) {
    memset(e, 0, sizeof(*e));
    e->type = _SD_BUS_VTABLE_END;
}

uint64_t mv_flag_unprivileged(void) { return SD_BUS_VTABLE_UNPRIVILEGED; }
uint64_t mv_flag_const(void) { return SD_BUS_VTABLE_PROPERTY_CONST; }
uint64_t mv_flag_emits_change(void) { return SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE; }
uint64_t mv_flag_emits_invalidation(void) { return SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION; }
uint64_t mv_flag_explicit(void) { return SD_BUS_VTABLE_PROPERTY_EXPLICIT; }
