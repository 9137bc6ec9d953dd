// Struct layouts exported for the Python side's check (sparsernn.nn._build.layout_problem),
// included by each library: every struct a library shares with Python lists its fields by
// name with their offsetof, and its sizeof. A library exports its list through two functions,
//
//   int64_t <prefix>_layout(const char *type, int64_t *out, int64_t n)
//       fills out[0 .. n) with the offsets of struct `type`'s fields, in its list's order,
//       then its size; returns how many values that takes (-1: no such struct)
//   const char *<prefix>_field(const char *type, int64_t i)
//       the name of field i of that list (null past its end)
//
// so Python compares them with its ctypes declarations field by field before the first call:
// two fields swapped, one added or one of another size, and the library is not used.

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace layout {

struct Field {
    const char *name;
    int64_t offset;
};

struct Struct {
    const char *name;
    int64_t size;
    const Field *fields;
    int64_t n_fields;
};

template <typename T, size_t N> constexpr Struct of(const char *name, const Field (&fields)[N]) {
    return Struct{name, (int64_t)sizeof(T), fields, (int64_t)N};
}

template <size_t N> const Struct *find(const Struct (&all)[N], const char *type) {
    for (const Struct &s : all)
        if (type && std::strcmp(s.name, type) == 0) return &s;
    return nullptr;
}

template <size_t N> int64_t fill(const Struct (&all)[N], const char *type, int64_t *out, int64_t n) {
    const Struct *s = find(all, type);
    if (!s) return -1;
    for (int64_t i = 0; i < s->n_fields && i < n; ++i) out[i] = s->fields[i].offset;
    if (s->n_fields < n) out[s->n_fields] = s->size;
    return s->n_fields + 1;
}

template <size_t N> const char *field(const Struct (&all)[N], const char *type, int64_t i) {
    const Struct *s = find(all, type);
    return s && i >= 0 && i < s->n_fields ? s->fields[i].name : nullptr;
}

}  // namespace layout

// One entry of a struct's field list: the field's name and offset.
#define LAYOUT_FIELD(T, f) layout::Field{#f, (int64_t)offsetof(T, f)}
