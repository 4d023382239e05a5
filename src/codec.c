/*
** codec.c: structured clone. Lua values <-> the byte format of
** docs/FORMAT.md (serialize, deserialize: the form messages wait in), a
** direct table-to-table copy with the same rules (structuredClone), and
** the registry of metatables that travel by name (register). The module's
** own userdata (a Buffer) are copied the way their mc_Type says; an object
** in the transfer list is written as its index there.
**
** Tables are written breadth-first: a table's first reference creates it
** (with its sizes), its body comes later, after the bodies of the tables
** found before it. Neither side recurses, and neither keeps more than a few
** slots of the Lua stack, so nesting depth is bounded only by memory. The
** work of Lua's tables, which keys chosen to collide in its hash make
** quadratic, is bounded too ("Colliding keys").
*/
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "mc.h"

#define FORMAT_VERSION 1  /* a message without STRDEF */
#define FORMAT_SHARED 2   /* with: version 1 readers refuse it */

enum {
  TAG_NIL = 0x00, TAG_FALSE = 0x01, TAG_TRUE = 0x02,
  TAG_INT = 0x03,       /* zigzag varint */
  TAG_FLOAT = 0x04,     /* IEEE 754 double, little-endian */
  TAG_STR = 0x05,       /* varint length, bytes */
  TAG_TABLE = 0x06,     /* u32 narr, u32 nhash: a new table */
  TAG_TABLE_MT = 0x07,  /* u32 narr, u32 nhash, varint length, name */
  TAG_REF = 0x08,       /* varint id of an object seen before */
  /* 0x09, 0x0b..0x1f: a type's copy (mc_Type.clone_tag): varint length,
  ** bytes */
  TAG_TRANSFER = 0x0a,  /* varint index in the transfer list */
  TAG_SHORTSTR = 0x20,  /* 0x20..0x3f: a string of 0..31 bytes */
  TAG_STRDEF = 0x40,    /* varint length, bytes: a string that takes the
                        ** next object id (version 2) */
  TAG_SMALLINT = 0x80   /* 0x80..0xff: an integer 0..127 */
};
#define SHORTSTR_MAX 31
#define VARINT_MAX 10

#define SCRATCH_MT "messagechannel.scratch"

#define NOTABLE ((size_t)-1)
#define STRING_OBJ ((size_t)-2)

/* What the codec knows of an object id: for a table, where its sizes are
** written (encoder) or its sizes (decoder); hdr is NOTABLE for a copied
** userdata, and for a shared string, which the decoder marks STRING_OBJ.
** The encoder keeps its address too (see enc_seen). */
typedef struct Obj {
  size_t hdr;
  uint32_t narr, nhash;
  const void *p;
} Obj;

/* A key whose main position a sender can choose (see "Colliding keys"). */
typedef struct Key {
  uint64_t h;
  int kind;  /* compat.h's MC_HASH_* */
} Key;

/*
** Scratch memory reused from call to call, kept in the state table. A call
** takes it and gives it back when done; if an error escapes in between, it
** stays taken, and the next call makes a new one, which replaces it (its
** __gc frees it). A call made meanwhile (from a __gc metamethod) makes its
** own.
*/
typedef struct Scratch {
  mc_Bytes out;
  mc_PtrMap seen;
  Obj *objs;
  size_t objcap;
  /* The scratch's uservalue is the id -> object table for the ids past
  ** the first STACK_IDS (see push_ids), reused so that a message
  ** allocates no table for it. These count the keys in use: 1..nids, and
  ** -1..-ndeferred (see defer_metatable). */
  int nids, ndeferred;
  int lastids;  /* nids of the call before, at most IDS_HINT_MAX */
  int idtab;  /* the stack index where this call put that table, or 0 */
  /* Colliding keys: the keys of the table being walked, keys per main
  ** position of the table being filled, and the walk's sample counts. */
  int keyhash;      /* compat.h's hashes match the running Lua */
  uint64_t seed;    /* places its cells */
  Key *keys;
  size_t nkeys, keycap;
  uint16_t *chains;
  size_t chaincap;
  uint64_t *cells;
  size_t cellcap;
  /* Interned strings (Lua 5.1 to 5.3): the distinct ones of the message
  ** being decoded, see dec_interned. */
  struct IStr *istrs;
  size_t istrcap;
  int taken;  /* by a call, until it gives the scratch back */
  int made;   /* by the call that has it: not yet in the state's slot */
} Scratch;

static void scratch_release (Scratch *s) {
  mc_bytes_free(&s->out);
  mc_ptrmap_free(&s->seen);
  free(s->objs);
  s->objs = NULL;
  s->objcap = 0;
  free(s->keys);
  free(s->chains);
  free(s->cells);
  free(s->istrs);
  s->keys = NULL;
  s->chains = NULL;
  s->cells = NULL;
  s->istrs = NULL;
  s->nkeys = s->keycap = s->chaincap = s->cellcap = s->istrcap = 0;
}

static int scratch__gc (lua_State *L) {
  scratch_release((Scratch *)lua_touserdata(L, 1));
  return 0;
}

/* Pushes the scratch userdata and returns it, marked taken. A call that
** finds it taken makes its own: a call made meanwhile (from a __gc
** metamethod), or any call after an error escaped one (that scratch stays
** taken). A scratch made so takes the state's slot when given back, and
** the one it replaces is garbage, with what its ids held. */
static Scratch *take_scratch (lua_State *L) {
  Scratch *s;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_SCRATCH);
  s = (Scratch *)lua_touserdata(L, -1);
  if (s != NULL && !s->taken) {
    s->taken = 1;
    return s;
  }
  lua_pop(L, 1);
  s = (Scratch *)mc_newuserdata(L, sizeof(Scratch), 1);
  memset(s, 0, sizeof(Scratch));
  s->taken = s->made = 1;
  luaL_getmetatable(L, SCRATCH_MT);
  lua_getfield(L, -1, "keyhash");  /* found true by mc_codec_open */
  s->keyhash = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_setmetatable(L, -2);
  /* unknown to a sender: the address space layout and the time */
  s->seed = (uint64_t)(uintptr_t)s ^ (uint64_t)time(NULL) << 32
            ^ (uint64_t)clock() ^ (uint64_t)(uintptr_t)L << 16;
  lua_newtable(L);
  mc_setuservalue(L, -2);
  return s;
}

/*
** The objects a call has met, by id (in the order met): the first
** STACK_IDS in as many slots of the Lua stack, the rest in the scratch's
** id table at keys 1, 2, ..., so that a small message costs no table
** access for them. An Ids is the stack index of that table; the slots
** are the ones below it.
*/
#define STACK_IDS 16

/* Pushes the slots for the ids, then a slot for the id table of the
** scratch, which must be at the top; returns that slot's stack index. The
** table is put there when first needed (ids_table): a small message needs
** none. Above them, the walk has the room a C function is given (it
** pushes a few values at a time, and its callers one more). */
static int push_ids (lua_State *L, Scratch *s) {
  int tbl = lua_gettop(L) + STACK_IDS + 1;
  luaL_checkstack(L, STACK_IDS + 1 + LUA_MINSTACK, "messagechannel");
  lua_settop(L, tbl);
  s->idtab = 0;
  return tbl;
}

/* Makes sure the slot tbl (push_ids) holds the id table. */
static void ids_table (lua_State *L, int tbl, Scratch *s) {
  if (s->idtab != tbl) {
    mc_getuservalue(L, tbl - STACK_IDS - 1);  /* the scratch */
    lua_replace(L, tbl);
    s->idtab = tbl;
  }
}

/* Sets the object of id `id` (of ids at stack index `tbl`) to the value
** at stack index idx, which may be relative to the top: the stack is as
** it was when idx is read. */
static void set_id_table (lua_State *L, int tbl, Scratch *s, uint32_t id,
                          int idx) {
  ids_table(L, tbl, s);
  lua_pushvalue(L, idx);
  lua_rawseti(L, tbl, (int)(id - STACK_IDS) + 1);
  s->nids = (int)(id - STACK_IDS) + 1;  /* give_scratch clears them */
}

/* The ids in slots, most of them, are set without a call. */
static inline void set_id (lua_State *L, int tbl, Scratch *s, uint32_t id,
                           int idx) {
  if (id < STACK_IDS)
    mc_copy_slot(L, idx, tbl - STACK_IDS + (int)id);
  else
    set_id_table(L, tbl, s, id, idx);
}

/* Pushes the object of id `id`. */
static void get_id (lua_State *L, int tbl, Scratch *s, uint32_t id) {
  if (id < STACK_IDS)
    lua_pushvalue(L, tbl - STACK_IDS + (int)id);
  else {
    ids_table(L, tbl, s);
    lua_rawgeti(L, tbl, (int)(id - STACK_IDS) + 1);
  }
}

/* The stack index of the object of id `id`: its slot, or the top where
** it is pushed. */
static int id_at (lua_State *L, int tbl, Scratch *s, uint32_t id) {
  if (id < STACK_IDS)
    return tbl - STACK_IDS + (int)id;
  ids_table(L, tbl, s);
  lua_rawgeti(L, tbl, (int)(id - STACK_IDS) + 1);
  return lua_gettop(L);
}

/* Empties the id table, or drops it after a large message: the new one
** is made to the size of that one, up to IDS_HINT_MAX, as a program tends
** to send messages of one shape. */
#define IDS_HINT_MAX (1 << 13)

static void clear_ids (lua_State *L, int idx, Scratch *s) {
  int i;
  s->lastids = s->nids < IDS_HINT_MAX ? s->nids : IDS_HINT_MAX;
  if (s->nids > (1 << 12) || s->ndeferred > (1 << 12)) {
    lua_createtable(L, s->lastids, 0);
    mc_setuservalue(L, idx);
  }
  else if (s->nids > 0 || s->ndeferred > 0) {
    mc_getuservalue(L, idx);
    for (i = 1; i <= s->nids; i++) {
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
    for (i = 1; i <= s->ndeferred; i++) {
      lua_pushnil(L);
      lua_rawseti(L, -2, -i);
    }
    lua_pop(L, 1);
  }
  s->nids = s->ndeferred = 0;
}

/* Gives the scratch at stack index idx back, trimmed after a large call. */
static void give_scratch (lua_State *L, int idx, Scratch *s) {
  clear_ids(L, idx, s);
  if (s->out.cap > ((size_t)1 << 20) || s->seen.mask >= (1u << 16)
      || s->objcap > (1u << 16) || s->keycap > (1u << 16)
      || s->chaincap > (1u << 18) || s->cellcap > (1u << 18)
      || s->istrcap > (1u << 16))
    scratch_release(s);
  else
    mc_ptrmap_clear(&s->seen);
  s->out.n = 0;
  s->taken = 0;
  if (s->made) {  /* made by this call: it is the state's now */
    s->made = 0;
    lua_pushvalue(L, idx);
    lua_rawseti(L, lua_upvalueindex(1), MC_CTX_SCRATCH);
  }
}

/* A table size hint for lua_createtable: never more than 2^26 slots. */
static int size_hint (size_t n) {
  return n > ((size_t)1 << 26) ? 1 << 26 : (int)n;
}

static int grow_objs (Scratch *s, size_t n) {
  if (n >= s->objcap) {
    size_t cap = s->objcap ? s->objcap * 2 : 64;
    Obj *o;
    if (cap > (size_t)-1 / sizeof(Obj))
      return 0;
    o = (Obj *)realloc(s->objs, cap * sizeof(Obj));
    if (o == NULL)
      return 0;
    s->objs = o;
    s->objcap = cap;
  }
  return 1;
}


/*
** Registered metatables are set once the whole value is built, so that a
** clone that fails half way leaves no half-filled object for a __gc to
** see. Until then they wait in table tbl at keys -1, -2, ...: each object,
** then its metatable.
*/
static void defer_metatable (lua_State *L, int tbl, Scratch *s) {
  int *n = &s->ndeferred;
  ids_table(L, tbl, s);
  lua_pushvalue(L, -2);  /* obj, mt, obj */
  lua_rawseti(L, tbl, -(++*n));
  lua_rawseti(L, tbl, -(++*n));  /* obj */
}

static void set_metatables (lua_State *L, int tbl, Scratch *s) {
  int i, n = s->ndeferred;
  if (n > 0)
    ids_table(L, tbl, s);
  for (i = 1; i < n; i += 2) {
    lua_rawgeti(L, tbl, -i);
    lua_rawgeti(L, tbl, -(i + 1));  /* obj, mt */
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
}


/*
** {======================================================
** Colliding keys
** =======================================================
*/

/*
** Lua finds a key by walking the chain of the keys that share its main
** position in the table's hash part (compat.h). Numbers, and strings on
** Lua 5.1, are hashed without a seed, so a sender can pick keys that all
** share one: filling or walking a table of them is then quadratic. The
** codec counts the probes such keys cost (the nodes a lookup walks past),
** and a message may cost at most WORK_PER_SLOT of them for each table
** slot (array value or pair) it holds, plus WORK_FREE; past that it
** raises "too many colliding keys".
** - Filling a table the codec makes (the decoder, the copy), it sized the
**   hash part itself: the count is exact, from how many keys share each
**   main position (fill_*).
** - Walking a table it is given (the encoder, the copy), each lua_next
**   looks the previous key up, in a hash part of a size the codec cannot
**   see: at least as many nodes as keys met outside 1..narr, at most
**   2^WALK_MAXLG. So it counts, for a sample of the keys (one in
**   2^WALK_SAMPLE, by their order: the same keys of the same table each
**   time), how many share a main position at each size the table can
**   have, and takes the worst (walk_*). This estimate is looser: a
**   table whose hash part is much larger than its keys (most of them
**   removed) is allowed what a table full at that size would cost, and
**   one whose array part has holes (so that keys past narr are in it) may
**   be judged at sizes too large; walking them was as costly for Lua to
**   build them. It also refuses keys that crowd only at sizes larger than
**   the table's, as multiples of 4095 do at 4096 nodes: the keys met so
**   far cannot tell such a table from one crafted for that size.
** The encoder also counts what the decoder will, so what it accepts the
** decoder of the same Lua accepts.
*/
#define WORK_PER_SLOT 64
#define WORK_FREE (1 << 20)
#define FILL_MIN 32     /* fewer pairs cost a key at most FILL_MIN probes */
#define FILL_FREE 16    /* see fill_key */
#define WALK_MIN 128    /* keys a walked table shows before sampling */
#define WALK_SAMPLE 5   /* one key in 2^WALK_SAMPLE is sampled */
#define WALK_SLACK 2    /* see walk_cost */
#define WALK_OUTGROW 4  /* see walk_cost */
#define WALK_MAXLG 30   /* hash parts have at most 2^30 nodes */

/* The probes a message has cost so far, and the slots it has. */
typedef struct Budget {
  uint64_t slots, fill, walk;
  uint64_t intern;  /* what Lua 5.1 to 5.3 do to intern the strings */
} Budget;

static int over_budget (uint64_t work, uint64_t slots) {
  return work > WORK_PER_SLOT * slots + WORK_FREE;
}

/* For the key at idx of a table whose array part holds 1..narr: -1 when
** it is one of those; else its kind (0 for a key whose place the sender
** cannot choose) and, in *h, its hash (compat.h). */
static int key_hash (lua_State *L, int idx, lua_Integer narr, uint64_t *h) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
#if MC_LUA_INTEGERS
      lua_Integer i;
      if (!lua_isinteger(L, idx))  /* an integral float is an integer key */
        return mc_hashnum(lua_tonumber(L, idx), h);
      i = lua_tointeger(L, idx);
      return i >= 1 && i <= narr ? -1 : mc_hashint(i, h);
#else
      lua_Number x = lua_tonumber(L, idx);
      return x >= 1 && x <= (lua_Number)narr && x == floor(x)
             ? -1 : mc_hashnum(x, h);
#endif
    }
    case LUA_TSTRING:
      return MC_HASH_STRINGS ? mc_keyhash(L, idx, h) : 0;
    default:
      return 0;
  }
}

/* The main position of a key in a hash part of 2^lg nodes. Modulo
** 2^lg - 1, adding up the lg-bit digits of h leaves its remainder, and is
** cheaper than a division. */
static uint64_t main_position (int kind, uint64_t h, int lg) {
  uint64_t m = ((uint64_t)1 << lg) - 1;
  if (!(kind & MC_HASH_MOD))
    return h & m;
  if (lg < 2)  /* modulo 1 */
    return 0;
  while (h > m)
    h = (h & m) + (h >> lg);
  return h == m ? 0 : h;
}

/* Filling a table made for nrec pairs. */
typedef struct Fill {
  int lg;            /* its hash part has 2^lg nodes; -1: not counted */
  int ready;         /* s->chains has a zero for each node */
  uint32_t longest;  /* the longest chain so far */
} Fill;

static void fill_begin (Fill *f, Scratch *s, size_t nrec) {
  f->lg = nrec >= FILL_MIN && s->keyhash
          ? mc_nodelg((unsigned long)size_hint(nrec)) : -1;
  f->ready = 0;
  f->longest = 0;
}

/* Zeroes the chains at the first key counted (tables of keys that are
** not counted take none); 0 when out of memory. */
static int fill_ready (Fill *f, Scratch *s) {
  size_t n = (size_t)1 << f->lg;
  if (f->ready)
    return 1;
  if (n > s->chaincap) {
    uint16_t *c = (uint16_t *)realloc(s->chains, n * sizeof *c);
    if (c == NULL)
      return 0;
    s->chains = c;
    s->chaincap = n;
  }
  memset(s->chains, 0, n * sizeof *s->chains);
  f->ready = 1;
  return 1;
}

/* String keys (MC_HASH_STRING): Lua 5.1 to 5.3 read at most 32 bytes of
** a string to place it, so real keys that differ little crowd by the
** hundred (the timestamps of a day, 32 bytes, in chains of 240 and 600,
** which Lua fills as fast as keys that spread), keys made to crowd by
** the thousand. A probe among the first STRING_CHAIN keys of a chain counts
** one in STRING_SHARE, every probe past them in full; their chains are
** not those whose length a key at an empty place may cost. So a key
** costs Lua at most STRING_CHAIN probes more than it is counted. */
#define STRING_SHARE 16
#define STRING_CHAIN 512

/* The probes a new key costs: the keys already at its main position; at
** an empty one, Lua may find there a node of another chain and walk that
** chain to move it, which is counted once chains grow past FILL_FREE
** (shorter ones cost at most FILL_FREE a key, whatever the keys). A key
** met twice (only hostile input has that) is counted as a new one. */
static uint32_t fill_key (Fill *f, Scratch *s, int kind, uint64_t h) {
  uint16_t *c = &s->chains[main_position(kind, h, f->lg)];
  uint32_t n = *c;
  if (n < UINT16_MAX)
    *c = (uint16_t)(n + 1);
  if (kind & MC_HASH_STRING)
    return n <= STRING_CHAIN ? n / STRING_SHARE
           : n - STRING_CHAIN + STRING_CHAIN / STRING_SHARE;
  if (n + 1 > f->longest)
    f->longest = n + 1;
  if (n > 0)
    return n;
  return f->longest > FILL_FREE ? f->longest - 1 : 0;
}

/* Walking a table: its keys that a sender can place, in s->keys; for
** the sampled ones, how many share each main position at each size, in
** s->cells: an open-addressing map from (size, main position) to a
** count, probed from a seeded hash (the sender chooses the positions). */
typedef struct Walk {
  size_t ncells;    /* cells in use */
  size_t mask;      /* s->cells has mask + 1 cells; 0: not sampling yet */
  int lo, hi;       /* the hash part has 2^lo to 2^hi nodes */
  uint64_t pairs[WALK_MAXLG + 1];  /* pairs of sampled keys that share a
                                   ** main position, per size */
} Walk;

#define CELL_COUNT 20  /* a cell: (position * 32 + lg + 1) << 20 | count */

static void walk_begin (Walk *w, Scratch *s) {
  w->ncells = w->mask = 0;
  w->lo = w->hi = 0;
  s->nkeys = 0;
}

/* The hash part has at least nodekeys nodes. */
static void walk_size (Walk *w, size_t nodekeys) {
  while (((size_t)1 << w->lo) < nodekeys && w->lo < WALK_MAXLG)
    w->lo++;
}

/* True for the i-th key met (from 0), once in 2^WALK_SAMPLE keys: the
** same keys of the same table each time, so that whether a table can be
** cloned does not change from call to call. */
static int walk_sampled (size_t i) {
  return (i & (((size_t)1 << WALK_SAMPLE) - 1)) == 0;
}

static size_t cell_slot (const Walk *w, const Scratch *s, uint64_t id) {
  uint64_t x = (id ^ s->seed) * 0x9e3779b97f4a7c15u;  /* splitmix64 */
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return (size_t)(x ^ (x >> 31)) & w->mask;
}

/* Makes room for one more cell (at most half of them in use); 0 when out
** of memory. */
static int walk_room (Walk *w, Scratch *s) {
  size_t n, i, old = w->mask + 1;
  uint64_t *c;
  if (w->mask != 0 && 2 * (w->ncells + 1) <= old)
    return 1;
  n = w->mask != 0 ? 2 * old : 256;
  if ((c = (uint64_t *)calloc(n, sizeof *c)) == NULL)
    return 0;
  w->mask = n - 1;
  for (i = 0; w->ncells > 0 && i < old; i++) {
    if (s->cells[i] != 0) {
      size_t j = cell_slot(w, s, s->cells[i] >> CELL_COUNT);
      while (c[j] != 0)
        j = (j + 1) & w->mask;
      c[j] = s->cells[i];
    }
  }
  free(s->cells);
  s->cells = c;
  s->cellcap = n;
  return 1;
}

/* Counts a sampled key at every size the table can have; 0 when out of
** memory. */
static int walk_count (Walk *w, Scratch *s, const Key *k) {
  int lg;
  if (k->kind & MC_HASH_STRING)  /* only the fill counts them */
    return 1;
  for (lg = w->lo; lg <= w->hi; lg++) {
    uint64_t id = main_position(k->kind, k->h, lg) * 32 + (uint64_t)lg + 1;
    size_t j;
    if (!walk_room(w, s))
      return 0;
    for (j = cell_slot(w, s, id); s->cells[j] != 0; j = (j + 1) & w->mask)
      if (s->cells[j] >> CELL_COUNT == id)
        break;
    if (s->cells[j] == 0) {
      s->cells[j] = id << CELL_COUNT;
      w->ncells++;
    }
    w->pairs[lg] += s->cells[j] & (((uint64_t)1 << CELL_COUNT) - 1);
    if (~s->cells[j] & (((uint64_t)1 << CELL_COUNT) - 1))
      s->cells[j]++;
  }
  return 1;
}

/* Sampling begins, with the keys met so far. The sizes go up to the
** largest a hash part can have, not to what the state's memory could
** hold now: that grows and shrinks with garbage, and whether a table can
** be cloned must not. Sizes much larger than the keys met weigh nothing
** (walk_cost), so they cost only their counting. */
static int walk_start (Walk *w, Scratch *s) {
  size_t i;
  w->hi = WALK_MAXLG > w->lo ? WALK_MAXLG : w->lo;
  memset(w->pairs, 0, sizeof w->pairs);
  if (!walk_room(w, s))
    return 0;
  for (i = 0; i < s->nkeys; i++)
    if (walk_sampled(i) && !walk_count(w, s, &s->keys[i]))
      return 0;
  return 1;
}

/* Takes a key of the kind (not 0) and hash h that key_hash gives, the
** nodekeys-th key the walk met outside the array part: the hash part has
** at least that many nodes. Returns -1 when out of memory, 1 when the
** estimate may have grown, else 0. */
static int walk_key (Walk *w, Scratch *s, int kind,
                     uint64_t h, size_t nodekeys) {
  Key *k;
  if (!s->keyhash)
    return 0;
  if (s->nkeys == s->keycap) {
    size_t cap = s->keycap ? 2 * s->keycap : 64;
    Key *p = (Key *)realloc(s->keys, cap * sizeof *p);
    if (p == NULL)
      return -1;
    s->keys = p;
    s->keycap = cap;
  }
  k = &s->keys[s->nkeys++];
  k->h = h;
  k->kind = kind;
  if (w->mask != 0 ? !walk_sampled(s->nkeys - 1) : s->nkeys < WALK_MIN)
    return 0;
  walk_size(w, nodekeys);
  if (w->mask == 0)
    return walk_start(w, s) ? 1 : -1;
  return walk_count(w, s, k) ? 1 : -1;
}

/* The probes a walk of the nodekeys keys met so far outside the array
** part costs, as the message's budget counts them; ended: all were met.
** At each size 2^lg the hash part can have, each pair of sampled keys
** sharing a main position stands for 2^(2 * WALK_SAMPLE) pairs. Keys with
** some structure crowd at some sizes and not at others, so the sizes the
** table does not have must not condemn it:
** - a table of that size could have 2^lg keys, and is allowed what they
**   would cost: only the excess counts (a size larger than the table's);
** - while the walk goes on, the smallest size, which more keys outgrow,
**   counts for a quarter (WALK_OUTGROW);
** - the count is halved (WALK_SLACK): it strays by a fifth, and a table
**   walked was built by Lua at as much cost, unlike one decoded. */
static uint64_t walk_cost (Walk *w, size_t nodekeys, int ended) {
  uint64_t most = 0;
  int lg;
  if (w->mask == 0)  /* not sampling yet: nothing counted */
    return 0;
  walk_size(w, nodekeys);
  for (lg = w->lo; lg <= w->hi; lg++) {
    uint64_t cost = (w->pairs[lg] << (2 * WALK_SAMPLE)) / WALK_SLACK;
    uint64_t more = ((uint64_t)1 << lg) > nodekeys  /* keys it may have */
                    ? ((uint64_t)1 << lg) - nodekeys : 0;
    if (lg == w->lo && !ended)
      cost /= WALK_OUTGROW;
    if (cost > WORK_PER_SLOT * more && cost - WORK_PER_SLOT * more > most)
      most = cost - WORK_PER_SLOT * more;
  }
  return most;
}

/* Raises DataCloneError for the table at stack index t, with the path to
** it from the top-level value at root (see "Error paths"). */
static void collide_fail (lua_State *L, int root, int t);

/* What the keys of the walk (in s->keys) cost the decoder that fills a
** table made for nrec pairs with them, in that order; (uint64_t)-1 when
** out of memory. */
static uint64_t fill_again (Scratch *s, size_t nrec) {
  Fill f;
  uint64_t work = 0;
  size_t i;
  if (s->nkeys == 0)
    return 0;
  fill_begin(&f, s, nrec);
  if (f.lg < 0)
    return 0;
  if (!fill_ready(&f, s))
    return (uint64_t)-1;
  for (i = 0; i < s->nkeys; i++)
    work += fill_key(&f, s, s->keys[i].kind, s->keys[i].h);
  return work;
}

/*
** A long clone in a worker that terminate() stops ends within
** milliseconds: every STOP_EVERY values, it looks whether its thread's hub
** was stopped.
*/
#define STOP_EVERY 4096

typedef struct Stop {
  lua_State *L;
  int left;
} Stop;

static void stop_begin (Stop *st, lua_State *L) {
  st->L = L;
  st->left = STOP_EVERY;
}

/* The hub is looked up only here: most clones end before. */
static int stop_check (Stop *st) {
  mc_Ctx *c = mc_ctx(st->L);
  st->left = STOP_EVERY;
  return c != NULL && c->hub != NULL && mc_hub_stopped(c->hub);
}

static inline int stop_now (Stop *st) {
  return --st->left <= 0 && stop_check(st);
}

/* }====================================================== */


/*
** {======================================================
** Encoder
** =======================================================
*/

typedef struct Enc {
  lua_State *L;
  Scratch *s;
  int sidx;       /* stack index of the scratch userdata */
  int queue;      /* stack index of the table id -> object */
  int root;       /* stack index of the value being encoded */
  int xmap;       /* stack index of the transfer table, or 0 */
  uint32_t nobjs;
  Budget b;
  Stop stop;
} Enc;

static void enc_nomem (Enc *e) {
  give_scratch(e->L, e->sidx, e->s);
  luaL_error(e->L, "not enough memory");
}

static void enc_collide (Enc *e, int t) {
  give_scratch(e->L, e->sidx, e->s);
  collide_fail(e->L, e->root, t);
}

static inline unsigned char *enc_room (Enc *e, size_t k) {
  mc_Bytes *b = &e->s->out;
  if (!mc_bytes_reserve(b, k))
    enc_nomem(e);
  return b->p + b->n;
}

static inline size_t put_varint (unsigned char *p, uint64_t v) {
  size_t i = 0;
  while (v >= 0x80) {
    p[i++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[i++] = (unsigned char)v;
  return i;
}

static void put_u32 (unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static inline void enc_tag_varint (Enc *e, int tag, uint64_t v) {
  unsigned char *p = enc_room(e, 1 + VARINT_MAX);
  p[0] = (unsigned char)tag;
  if (v < 0x80) {  /* most of them */
    p[1] = (unsigned char)v;
    e->s->out.n += 2;
  }
  else if (v < 0x4000) {  /* object ids past 127 */
    p[1] = (unsigned char)(v | 0x80);
    p[2] = (unsigned char)(v >> 7);
    e->s->out.n += 3;
  }
  else
    e->s->out.n += 1 + put_varint(p + 1, v);
}

static inline void enc_int (Enc *e, int64_t v) {
  if (v >= 0 && v < 0x80) {
    *enc_room(e, 1) = (unsigned char)(TAG_SMALLINT | v);
    e->s->out.n++;
  }
  else  /* zigzag: small magnitudes, either sign, take few bytes */
    enc_tag_varint(e, TAG_INT, v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1);
}

/* Byte by byte, spelled out: compilers make one store of it where the
** machine is little-endian. */
static void put_u64 (unsigned char *p, uint64_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
  p[4] = (unsigned char)(v >> 32);
  p[5] = (unsigned char)(v >> 40);
  p[6] = (unsigned char)(v >> 48);
  p[7] = (unsigned char)(v >> 56);
}

static void enc_float (Enc *e, double d) {
  unsigned char *p = enc_room(e, 9);
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  p[0] = TAG_FLOAT;
  put_u64(p + 1, u);
  e->s->out.n += 9;
}

#if MC_LUA_INTEGERS

static void enc_number (Enc *e, int idx) {
  if (lua_isinteger(e->L, idx))
    enc_int(e, (int64_t)lua_tointeger(e->L, idx));
  else
    enc_float(e, (double)lua_tonumber(e->L, idx));
}

#else

/* Every number is a float: the integral ones are written compactly. */
static void enc_lnumber (Enc *e, lua_Number x) {
  double d = (double)x;
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0
      && d == (double)(int64_t)d && !(d == 0 && signbit(d)))
    enc_int(e, (int64_t)d);
  else
    enc_float(e, d);
}

#define enc_number(e, idx) enc_lnumber((e), lua_tonumber((e)->L, (idx)))

#endif

static void enc_bytes (Enc *e, int tag, const char *s, size_t len) {
  unsigned char *p = enc_room(e, 1 + VARINT_MAX + len);
  size_t h;
  p[0] = (unsigned char)tag;
  h = 1 + put_varint(p + 1, len);
  if (len > 0)
    memcpy(p + h, s, len);
  e->s->out.n += h + len;
}

/* Writes the string s of len bytes, not shared. Most strings are short:
** written here, by a loop, which costs less than a call to memcpy. */
static inline void enc_str (Enc *e, const char *s, size_t len) {
  if (len <= SHORTSTR_MAX) {
    unsigned char *p = enc_room(e, 1 + SHORTSTR_MAX);
    size_t i;
    p[0] = (unsigned char)(TAG_SHORTSTR + len);
    for (i = 0; i < len; i++)
      p[1 + i] = (unsigned char)s[i];
    e->s->out.n += 1 + len;
  }
  else
    enc_bytes(e, TAG_STR, s, len);
}

/* Strings met once a message has made SHARE_AFTER objects (a message of
** many tables, whose keys repeat), of at least SHARE_MIN bytes, are
** written once (STRDEF) and referred to by id after that. */
#define SHARE_AFTER 16
#define SHARE_MIN 2

/* The objects of a message of at most SEEN_SCAN are found by their
** addresses in s->objs, which costs less than the map for so few; the map
** takes them all when one more comes. */
#define SEEN_SCAN 8

/* The id of the object of address p met before, or MC_NOID. */
static uint32_t enc_seen (Enc *e, const void *p) {
  uint32_t id;
  if (e->nobjs > SEEN_SCAN)
    return mc_ptrmap_get(&e->s->seen, p);
  for (id = 0; id < e->nobjs; id++)
    if (e->s->objs[id].p == p)
      return id;
  return MC_NOID;
}

/* Gives the object at idx (address p) the next id. */
static void enc_newobj (Enc *e, int idx, const void *p, size_t hdr) {
  Scratch *s = e->s;
  uint32_t id = e->nobjs, i;
  if (id == MC_NOID - 1 || !grow_objs(s, id))
    enc_nomem(e);
  s->objs[id].hdr = hdr;
  s->objs[id].p = p;
  if (id >= SEEN_SCAN) {
    for (i = id == SEEN_SCAN ? 0 : id; i <= id; i++)
      if (!mc_ptrmap_add(&s->seen, s->objs[i].p, i))
        enc_nomem(e);
  }
  e->nobjs++;
  set_id(e->L, e->queue, s, id, idx);
}

/* Writes the string s of len bytes at idx. */
static void enc_string (Enc *e, int idx, const char *s, size_t len) {
  if (e->nobjs >= SHARE_AFTER && len >= SHARE_MIN) {
    uint32_t id = enc_seen(e, s);
    if (id != MC_NOID) {
      enc_tag_varint(e, TAG_REF, id);
      return;
    }
    enc_newobj(e, idx, s, NOTABLE);  /* kept in the ids: its address
                                     ** stays its own */
    e->s->out.p[0] = FORMAT_SHARED;
    enc_bytes(e, TAG_STRDEF, s, len);
    return;
  }
  enc_str(e, s, len);
}

/* Where a value being encoded sits, for error messages: in table `t` at
** key `k` (a stack index), or at array index `i` when k is 0; t is 0 for the
** top-level value. */
typedef struct Where {
  int t, k;
  lua_Integer i;
  int askey;
} Where;

/* For a metatable at mt: when it is one of the module's own objects made
** in Lua (a MessageChannel, a Worker, ...), which the clone rules treat as
** the web treats platform objects, pushes its name and returns 1; else
** pushes nil and returns 0. */
static int own_object (lua_State *L, int mt) {
  mt = mc_absindex(L, mt);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OWN_MT);
  lua_pushvalue(L, mt);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return lua_type(L, -1) == LUA_TSTRING;
}

static void enc_fail (Enc *e, const char *what, const Where *w);

static void enc_table (Enc *e, int idx, const Where *w) {
  lua_State *L = e->L;
  const void *p = lua_topointer(L, idx);
  uint32_t id = enc_seen(e, p);
  unsigned char *o;
  if (id != MC_NOID) {
    enc_tag_varint(e, TAG_REF, id);
    return;
  }
  o = enc_room(e, 9);
  o[0] = TAG_TABLE;
  enc_newobj(e, idx, p, e->s->out.n + 1);
  e->s->out.n += 9;  /* the sizes are written with the body */
  if (lua_getmetatable(L, idx)) {
    if (own_object(L, -1))
      enc_fail(e, lua_tostring(L, -1), w);
    lua_pop(L, 1);
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_MT2NAME);
    lua_pushvalue(L, -2);
    lua_rawget(L, -2);  /* mt, mt2name, name */
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len, h;
      const char *name = lua_tolstring(L, -1, &len);
      e->s->out.p[e->s->out.n - 9] = TAG_TABLE_MT;
      o = enc_room(e, VARINT_MAX + len);
      h = put_varint(o, len);
      memcpy(o + h, name, len);
      e->s->out.n += h + len;
    }
    lua_pop(L, 3);
  }
}

/* For a value that is not nil, a boolean, a number, a string or a table:
** what makes it not cloneable, or NULL when it is a type's object that
** can be copied (its type in *t). */
static const char *not_cloneable (lua_State *L, int idx, const mc_Type **t) {
  switch (lua_type(L, idx)) {
    case LUA_TUSERDATA:
      *t = mc_ctx_type(L, idx);
      if (*t == NULL)
        return "userdata";
      if ((*t)->clone_tag == 0)
        return (*t)->name;
      return (*t)->uncloneable(lua_touserdata(L, idx));
    case LUA_TLIGHTUSERDATA:
      return "light userdata";
    default:
      return lua_typename(L, lua_type(L, idx));
  }
}

static void clone_fail (lua_State *L, int root, const char *what,
                        const Where *w);

/* Writes the value at idx, of that type, which is neither a string nor
** a number (enc_value and enc_key write those). */
static void enc_other (Enc *e, int idx, int type, const Where *w) {
  lua_State *L = e->L;
  switch (type) {
    case LUA_TNIL:
      *enc_room(e, 1) = TAG_NIL;
      e->s->out.n++;
      break;
    case LUA_TBOOLEAN:
      *enc_room(e, 1) = lua_toboolean(L, idx) ? TAG_TRUE : TAG_FALSE;
      e->s->out.n++;
      break;
    case LUA_TTABLE:
      enc_table(e, idx, w);
      break;
    default: {
      const mc_Type *t = NULL;
      const char *bad;
      const void *obj;
      uint32_t id;
      if (e->xmap != 0) {  /* moved, not copied: its index in the list */
        lua_pushvalue(L, idx);
        lua_rawget(L, e->xmap);
        if (!lua_isnil(L, -1)) {
          lua_Integer i = lua_tointeger(L, -1);
          lua_pop(L, 1);
          enc_tag_varint(e, TAG_TRANSFER, (uint64_t)i - 1);
          break;
        }
        lua_pop(L, 1);
      }
      bad = not_cloneable(L, idx, &t);
      if (bad != NULL)
        enc_fail(e, bad, w);
      obj = lua_touserdata(L, idx);
      id = enc_seen(e, obj);
      if (id != MC_NOID)
        enc_tag_varint(e, TAG_REF, id);
      else {
        size_t len;
        const void *p = t->bytes((void *)obj, &len);
        enc_newobj(e, idx, obj, NOTABLE);
        enc_bytes(e, t->clone_tag, (const char *)p, len);
      }
      break;
    }
  }
}

/* Writes the value at idx: a string or a number here, as most are. */
static inline void enc_value (Enc *e, int idx, const Where *w) {
  lua_State *L = e->L;
  int type = lua_type(L, idx);
  if (type == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    enc_str(e, s, len);
  }
  else if (type == LUA_TNUMBER)
    enc_number(e, idx);
  else
    enc_other(e, idx, type, w);
}

/* Whether the key at idx, a number, is narr + 1, the next of an array
** part that holds 1..narr. */
static int array_next (lua_State *L, int idx, lua_Integer narr) {
  if (narr == (lua_Integer)UINT32_MAX - 1)
    return 0;
#if MC_LUA_INTEGERS
  {  /* a key is never a float of integral value: Lua made it an integer */
    int isint;
    lua_Integer i = lua_tointegerx(L, idx, &isint);
    return isint && i == narr + 1;
  }
#else
  return lua_tonumber(L, idx) == (lua_Number)(narr + 1);
#endif
}

/* Writes the key at idx of a pair, of that type; *kind and *h get what
** key_hash gives. */
static void enc_key (Enc *e, int idx, int type, const Where *w, int *kind,
                     uint64_t *h) {
  lua_State *L = e->L;
  *kind = 0;
  if (type == LUA_TNUMBER) {
#if MC_LUA_INTEGERS
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      enc_int(e, (int64_t)i);
      *kind = mc_hashint(i, h);
    }
    else {
      lua_Number x = lua_tonumber(L, idx);
      enc_float(e, (double)x);
      *kind = mc_hashnum(x, h);
    }
#else
    lua_Number x = lua_tonumber(L, idx);
    enc_lnumber(e, x);
    *kind = mc_hashnum(x, h);
#endif
  }
  else if (type == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    *kind = mc_hashstr(s, len, h);
    enc_string(e, idx, s, len);
  }
  else
    enc_other(e, idx, type, w);
}

static void enc_stop (Enc *e) {
  give_scratch(e->L, e->sidx, e->s);
  mc_ctx_arm_stop(e->L);
  luaL_error(e->L, "DataCloneError: the thread is stopping");
}

/* Writes the body of the table at stack index t (object id), with the
** stack's top at top. One walk:
** lua_next gives the keys of the array part first, 1, 2, ... in order,
** and the run of them from 1 before any other key is written as the
** array part; every other key, as a pair. (Keys 1..n that Lua keeps in
** the hash part come as pairs: the copy has the same keys and values.) */
static void enc_body (Enc *e, uint32_t id, int t, int top) {
  lua_State *L = e->L;
  lua_Integer narr = 0;
  uint32_t nhash = 0;
  Where w;
  Walk walk;
  uint64_t fill;
  w.t = t;
  w.askey = 0;
  walk_begin(&walk, e->s);
  lua_pushnil(L);
  while (lua_next(L, t)) {  /* t, k, v */
    int ktype = lua_type(L, top + 1), kind, grew;
    uint64_t h = 0;
    if (stop_now(&e->stop))
      enc_stop(e);
    if (nhash == 0 && ktype == LUA_TNUMBER && array_next(L, top + 1, narr)) {
      w.k = 0;
      w.i = ++narr;
      enc_value(e, top + 2, &w);
      lua_pop(L, 1);
      continue;
    }
    w.k = top + 1;
    w.askey = 1;
    enc_key(e, top + 1, ktype, &w, &kind, &h);
    w.askey = 0;
    enc_value(e, top + 2, &w);
    if (nhash == UINT32_MAX)
      enc_nomem(e);
    nhash++;
    if (kind != 0
        && (grew = walk_key(&walk, e->s, kind, h, nhash)) != 0) {
      if (grew < 0)
        enc_nomem(e);
      if (over_budget(e->b.walk + walk_cost(&walk, nhash, 0),
                      e->b.slots + narr + nhash))
        enc_collide(e, t);
    }
    lua_pop(L, 1);
  }
  e->b.slots += (uint64_t)narr + nhash;
  e->b.walk += walk_cost(&walk, nhash, 1);
  if ((fill = fill_again(e->s, nhash)) == (uint64_t)-1)
    enc_nomem(e);
  e->b.fill += fill;
  if (over_budget(e->b.walk, e->b.slots) || over_budget(e->b.fill, e->b.slots))
    enc_collide(e, t);
  put_u32(e->s->out.p + e->s->objs[id].hdr, (uint32_t)narr);
  put_u32(e->s->out.p + e->s->objs[id].hdr + 4, nhash);
}

/* Encodes the value at idx into the scratch's out, pushing the scratch
** (taken: give it back when done with its bytes) and, above it, the
** slots of the ids. */
static void encode (Enc *e, lua_State *L, int idx, int xmap) {
  Where w;
  uint32_t id;
  e->L = L;
  e->root = mc_absindex(L, idx);
  e->xmap = xmap;
  e->s = take_scratch(L);
  e->sidx = lua_gettop(L);
  e->queue = push_ids(L, e->s);
  e->nobjs = 0;
  memset(&e->b, 0, sizeof e->b);
  stop_begin(&e->stop, L);
  e->s->out.n = 0;
  *enc_room(e, 1) = FORMAT_VERSION;
  e->s->out.n = 1;
  memset(&w, 0, sizeof w);
  enc_value(e, e->root, &w);
  for (id = 0; id < e->nobjs; id++) {
    if (e->s->objs[id].hdr == NOTABLE)
      continue;
    if (id < STACK_IDS)
      enc_body(e, id, id_at(L, e->queue, e->s, id), e->queue);
    else {  /* id_at pushes it */
      enc_body(e, id, id_at(L, e->queue, e->s, id), e->queue + 1);
      lua_pop(L, 1);
    }
  }
}

/* }====================================================== */


/*
** {======================================================
** Error paths: only computed when a clone fails
** =======================================================
*/

static int is_identifier (const char *s, size_t len) {
  static const char *const reserved[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for",
    "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
    "return", "then", "true", "until", "while", NULL
  };
  size_t i;
  int r;
  if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
    return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
          || (c >= '0' && c <= '9')))
      return 0;
  }
  for (r = 0; reserved[r] != NULL; r++)
    if (strlen(reserved[r]) == len && memcmp(reserved[r], s, len) == 0)
      return 0;
  return 1;
}

/* Pushes the path segment for key k: .name, ["a b"], [3], [true], [table] */
static void push_segment (lua_State *L, int k) {
  switch (lua_type(L, k)) {
    case LUA_TSTRING: {
      size_t len, i;
      const char *s = lua_tolstring(L, k, &len);
      luaL_Buffer b;
      if (is_identifier(s, len)) {
        lua_pushfstring(L, ".%s", s);
        break;
      }
      luaL_buffinit(L, &b);
      luaL_addstring(&b, "[\"");
      for (i = 0; i < len && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
          luaL_addchar(&b, '\\');
          luaL_addchar(&b, (char)c);
        }
        else if (c < 32 || c > 126) {
          char esc[8];
          snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
          luaL_addstring(&b, esc);
        }
        else
          luaL_addchar(&b, (char)c);
      }
      if (i < len)
        luaL_addstring(&b, "...");
      luaL_addstring(&b, "\"]");
      luaL_pushresult(&b);
      break;
    }
    case LUA_TNUMBER: {
      /* an integer as Lua writes it; a float in the fewest digits that
      ** read back as it, from Lua's 14 (which would name 1e15 for the
      ** key 1e15 + 1) */
      char num[48];
      double x = (double)lua_tonumber(L, k);
      int digits = 14;
#if MC_LUA_INTEGERS
      if (lua_isinteger(L, k)) {
        lua_pushvalue(L, k);
        lua_pushfstring(L, "[%s]", lua_tostring(L, -1));  /* of the copy */
        lua_remove(L, -2);
        break;
      }
#endif
      if (x == floor(x) && x >= -9223372036854775808.0
          && x < 9223372036854775808.0)  /* digits, as the integer key
                                         ** Lua 5.3+ makes of it reads;
                                         ** -0 as 0, the key it is */
        snprintf(num, sizeof num, "%.0f", x + 0.0);
      else
        do
          snprintf(num, sizeof num, "%.*g", digits, x);
        while (strtod(num, NULL) != x && ++digits <= 17);
      lua_pushfstring(L, "[%s]", num);
      break;
    }
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, k) ? "[true]" : "[false]");
      break;
    default:  /* a Buffer key is [Buffer], a table key [table] */
      lua_pushfstring(L, "[%s]", mc_ctx_typename(L, k));
      break;
  }
}

/* Pushes segs[n] .. segs[1], to be followed by `tail` more steps (0 or
** 1): a path of more than 3 * ENDS steps, the tail counted, keeps ENDS
** steps at each end. */
static void join_segments (lua_State *L, int segs, int n, int tail) {
  enum { ENDS = 16 };
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  for (i = n; i >= 1; i--) {
    if (n + tail > 3 * ENDS && i == n - ENDS) {
      char gap[48];
      snprintf(gap, sizeof gap, "...(%d more)...", n + tail - 2 * ENDS);
      luaL_addstring(&b, gap);
      i = ENDS - tail + 1;
      continue;
    }
    lua_rawgeti(L, segs, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/*
** Pushes the path from table `root` to table `target`, breadth-first (a
** shortest one), "" when they are the same, to be followed by `after`
** more steps (see join_segments). A step into a table used as a key
** shows as <key>, whether or not a value leads there too.
*/
static void push_path (lua_State *L, int root, int target, int after) {
  int parent, keyof, queue, head = 1, tail = 1, n = 0;
  lua_newtable(L);  /* child -> parent */
  parent = lua_gettop(L);
  lua_newtable(L);  /* child -> key it was found under (keyof: as a key) */
  keyof = parent + 1;
  lua_newtable(L);
  queue = parent + 2;
  lua_pushvalue(L, root);
  lua_rawseti(L, queue, tail++);
  lua_pushvalue(L, root);
  lua_pushboolean(L, 1);
  lua_rawset(L, parent);
  while (head < tail) {
    lua_rawgeti(L, queue, head++);  /* t */
    lua_pushnil(L);
    while (lua_next(L, -2)) {  /* t, k, v */
      int side;
      for (side = 0; side < 2; side++) {
        int x = side == 0 ? -1 : -2;  /* the value, then the key */
        lua_pushvalue(L, x);
        if (lua_istable(L, -1)) {
          lua_pushvalue(L, -1);
          lua_rawget(L, parent);
          if (lua_isnil(L, -1)) {
            lua_pop(L, 1);  /* t, k, v, x */
            lua_pushvalue(L, -1);
            lua_pushvalue(L, -5);
            lua_rawset(L, parent);
            lua_pushvalue(L, -1);
            lua_pushvalue(L, side == 0 ? -4 : keyof);
            lua_rawset(L, keyof);
            if (lua_rawequal(L, -1, target)) {  /* found: walk no more */
              lua_settop(L, queue);
              goto found;
            }
            lua_rawseti(L, queue, tail++);
            continue;
          }
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
 found:
  /* walk up from target, collecting the segments last first */
  lua_newtable(L);  /* segs */
  lua_pushvalue(L, target);  /* segs, cur */
  while (!lua_rawequal(L, -1, root)) {
    lua_pushvalue(L, -1);
    lua_rawget(L, keyof);  /* segs, cur, key */
    if (lua_isnil(L, -1)) {  /* not reachable: cannot happen */
      lua_pop(L, 1);
      break;
    }
    if (lua_rawequal(L, -1, keyof))
      lua_pushliteral(L, "<key>");
    else
      push_segment(L, lua_gettop(L));
    lua_rawseti(L, -4, ++n);  /* segs, cur, key */
    lua_pop(L, 1);
    lua_rawget(L, parent);  /* segs, parent of cur */
  }
  lua_pop(L, 1);
  join_segments(L, lua_gettop(L), n, after);
  lua_replace(L, parent);
  lua_settop(L, parent);
}

/* Raises the DataCloneError for a value of type `what` found at w, with
** the path from the top-level value at stack index root. */
static void clone_fail (lua_State *L, int root, const char *what,
                        const Where *w) {
  luaL_checkstack(L, 40, "error message");
  lua_pushfstring(L, "DataCloneError: %s is not cloneable", what);
  if (w->t != 0) {
    push_path(L, root, w->t, !w->askey);  /* and w's key, not as a key */
    if (w->askey) {
      if (mc_rawlen(L, -1) == 0)
        lua_pushliteral(L, " (as a key at top level)");
      else
        lua_pushfstring(L, " (as a key in %s)", lua_tostring(L, -1));
    }
    else {
      if (w->k != 0)
        push_segment(L, w->k);
      else
        lua_pushfstring(L, "[%d]", (int)w->i);
      lua_pushfstring(L, " (at %s%s)", lua_tostring(L, -2), lua_tostring(L, -1));
      lua_remove(L, -2);
    }
    lua_remove(L, -2);
    lua_concat(L, 2);
  }
  lua_error(L);
}

static void enc_fail (Enc *e, const char *what, const Where *w) {
  give_scratch(e->L, e->sidx, e->s);
  clone_fail(e->L, e->root, what, w);
}

static void collide_fail (lua_State *L, int root, int t) {
  luaL_checkstack(L, 40, "error message");
  if (lua_rawequal(L, root, t))
    lua_pushliteral(L, "DataCloneError: too many colliding keys (at top "
                       "level)");
  else {
    push_path(L, root, t, 0);
    lua_pushfstring(L, "DataCloneError: too many colliding keys (at %s)",
                    lua_tostring(L, -1));
  }
  lua_error(L);
}

/* }====================================================== */


/*
** {======================================================
** Decoder: the input is hostile
** =======================================================
*/

typedef struct Dec {
  lua_State *L;
  Scratch *s;
  int sidx;
  int refs;        /* stack index of the table id -> object */
  int xarr;        /* stack index of the transferred objects, or 0 */
  int shared;      /* version 2: STRDEF may come */
  size_t ncells;   /* in s->cells: hashes of interned strings (Lua 5.1
                   ** to 5.3); (size_t)-1 until made for this message */
  uint32_t nistrs; /* in s->istrs: the distinct strings of those */
  const unsigned char *p;
  size_t n, pos;
  size_t claimed;  /* table slots announced so far; at most n */
  uint32_t nobjs;
  Budget b;
  Stop stop;
  lua_Integer i;   /* the last SMALLINT or INT read */
  lua_Number x;    /* the last FLOAT read */
} Dec;

static void dec_fail (Dec *d, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "DataCloneError: %s at byte %lu", what,
           (unsigned long)d->pos);
  give_scratch(d->L, d->sidx, d->s);
  lua_pushstring(d->L, msg);
  lua_error(d->L);
}

static void dec_nomem (Dec *d) {
  give_scratch(d->L, d->sidx, d->s);
  luaL_error(d->L, "not enough memory");
}

static void dec_stop (Dec *d) {
  mc_ctx_arm_stop(d->L);
  dec_fail(d, "the thread is stopping");
}

static void dec_need (Dec *d, size_t k) {
  if (d->n - d->pos < k)
    dec_fail(d, "truncated input");
}

static uint64_t dec_varint_long (Dec *d) {
  uint64_t v = 0;
  int shift;
  for (shift = 0; shift < 70; shift += 7) {
    unsigned char c;
    dec_need(d, 1);
    c = d->p[d->pos];
    if (shift == 63 && c > 1)
      dec_fail(d, "varint overflow");
    if (c == 0 && shift > 0)  /* a zero last group: not the shortest form */
      dec_fail(d, "overlong varint");
    d->pos++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80)
      return v;
  }
  dec_fail(d, "varint overflow");
  return 0;
}

/* Most varints take one byte; object ids past 127, two. Those are read
** here; longer ones, and any that fail, by dec_varint_long. */
static inline uint64_t dec_varint (Dec *d) {
  const unsigned char *p = d->p + d->pos;
  if (d->pos < d->n && p[0] < 0x80) {
    d->pos++;
    return p[0];
  }
  if (d->n - d->pos >= 2 && p[1] >= 0x01 && p[1] < 0x80) {
    d->pos += 2;
    return (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
  }
  return dec_varint_long(d);
}

static uint32_t get_u32 (const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
         | (uint32_t)p[3] << 24;
}

static uint32_t dec_u32 (Dec *d) {
  dec_need(d, 4);
  d->pos += 4;
  return get_u32(d->p + d->pos - 4);
}

/* A length that must fit in what is left of the input. */
static size_t dec_len (Dec *d) {
  size_t at = d->pos;
  uint64_t len = dec_varint(d);
  if (len > d->n - d->pos) {
    d->pos = at;
    dec_fail(d, "length beyond the end of input");
  }
  return (size_t)len;
}

static inline void dec_newobj (Dec *d, size_t hdr, uint32_t narr,
                               uint32_t nhash) {
  uint32_t id = d->nobjs;
  if (!grow_objs(d->s, id))
    dec_nomem(d);
  d->s->objs[id].hdr = hdr;
  d->s->objs[id].narr = narr;
  d->s->objs[id].nhash = nhash;
  d->nobjs++;
  set_id(d->L, d->refs, d->s, id, -1);  /* the object, at the top */
}

static void dec_table (Dec *d, int tag) {
  lua_State *L = d->L;
  size_t at = d->pos - 1;
  uint32_t narr, nhash;
  if (d->n - d->pos >= 8) {  /* both sizes at once */
    narr = get_u32(d->p + d->pos);
    nhash = get_u32(d->p + d->pos + 4);
    d->pos += 8;
  }
  else {  /* near the end: each size fails where it would alone */
    narr = dec_u32(d);
    nhash = dec_u32(d);
  }
  /* every slot takes at least one byte of the rest of the input: this
  ** bounds what the sizes can make us allocate */
  if ((uint64_t)narr + 2 * (uint64_t)nhash > d->n - d->claimed) {
    d->pos = at;
    dec_fail(d, "table sizes beyond the input");
  }
  d->claimed += (size_t)narr + 2 * (size_t)nhash;
  if (tag == TAG_TABLE_MT) {
    size_t len = dec_len(d);
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_NAME2MT);
    lua_pushlstring(L, (const char *)d->p + d->pos, len);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1)) {
      char what[96];
      snprintf(what, sizeof what, "unknown registered metatable '%.*s'",
               (int)(len > 48 ? 48 : len), (const char *)d->p + d->pos);
      d->pos = at;
      dec_fail(d, what);
    }
    d->pos += len;
    lua_remove(L, -2);  /* mt */
    lua_createtable(L, size_hint(narr), size_hint(nhash));
    lua_insert(L, -2);  /* t, mt */
    defer_metatable(L, d->refs, d->s);
  }
  else
    lua_createtable(L, size_hint(narr), size_hint(nhash));
  dec_newobj(d, 0, narr, nhash);
}

/*
** Lua 5.1 interns every string it makes, and 5.2 and 5.3 every one of at
** most 40 bytes (MC_INTERN_MAX): a new string is compared with each string
** of its chain, those of the same length byte for byte up to where they
** differ. The hash of 5.1 has no seed; those of 5.2 and 5.3 have one, but
** read at most 32 bytes of a string, the same ones whatever the seed
** (compat.h, mc_hashstr). So a sender can pick many strings of one hash,
** and each one decoded is then compared with all those before it:
** quadratic. The decoder counts that work, as Lua does it, for the
** distinct strings of the message in each group of hashes that Lua may
** compare (MC_INTERN_GROUP of the hash; s->cells: that << 32 |
** the last one's index + 1 in s->istrs, where each string has its bytes'
** place in the input and the one before it of that hash; the strings met
** are in s->seen, with their index): 16 for each string passed, and for
** one of the same length a quarter of the bytes that agree, plus one
** (memcmp compares several at a time). A message may
** cost INTERN_PER_BYTE for each of its bytes, plus INTERN_FREE. Strings
** that differ early (a counter first, or any difference within their
** first bytes) cost little however long they are.
*/
#define INTERN_PER_BYTE 256
#define INTERN_FREE ((uint64_t)64 << 20)
#define INTERN_STEP 16

typedef struct IStr {
  size_t at, len;  /* its bytes are p[at .. at + len - 1] */
  uint32_t prev;   /* the one before it of its hash: index + 1, or 0 */
} IStr;

/* The cell of hash h in s->cells, which has room for one more. */
static uint64_t *intern_cell (Dec *d, uint64_t h) {
  Scratch *s = d->s;
  size_t j, mask;
  uint64_t *c;
  if (d->ncells == (size_t)-1) {  /* what an earlier call left goes */
    free(s->cells);
    s->cells = NULL;
    s->cellcap = d->ncells = 0;
  }
  if (2 * (d->ncells + 1) > s->cellcap) {  /* at most half in use */
    size_t n = s->cellcap ? 2 * s->cellcap : 256, i;
    uint64_t *cells = (uint64_t *)calloc(n, sizeof *cells);
    if (cells == NULL)
      dec_nomem(d);
    for (i = 0; d->ncells > 0 && i < s->cellcap; i++) {
      if (s->cells[i] != 0) {
        j = (size_t)((s->cells[i] >> 32) * 0x9e3779b97f4a7c15u >> 32)
            & (n - 1);
        while (cells[j] != 0)
          j = (j + 1) & (n - 1);
        cells[j] = s->cells[i];
      }
    }
    free(s->cells);
    s->cells = cells;
    s->cellcap = n;
  }
  mask = s->cellcap - 1;
  for (j = (size_t)(h * 0x9e3779b97f4a7c15u >> 32) & mask;
       (c = &s->cells[j], *c != 0) && *c >> 32 != h;
       j = (j + 1) & mask)
    ;
  if (*c == 0) {
    *c = h << 32;
    d->ncells++;
  }
  return c;
}

/* Counts the string at the top, made from input at byte `at` (its tag),
** whose bytes end at d->pos. */
static void dec_interned (Dec *d, size_t at) {
  size_t len;
  uint64_t h = 0, *c, limit;
  uint32_t id, k;
  const char *str;
  const unsigned char *bytes;
  if (!MC_HASH_STRINGS || !d->s->keyhash)
    return;
  str = lua_tolstring(d->L, -1, &len);
  if (len > MC_INTERN_MAX)
    return;
  bytes = d->p + d->pos - len;
  (void)mc_hashstr(str, len, &h);
  c = intern_cell(d, h & MC_INTERN_GROUP);
  id = mc_ptrmap_get(&d->s->seen, str);
  limit = INTERN_PER_BYTE * (uint64_t)d->n + INTERN_FREE;
  /* a string met before is compared with those met since; a new one,
  ** with all */
  for (k = (uint32_t)*c; k != 0 && k != id + 1; k = d->s->istrs[k - 1].prev) {
    const IStr *t = &d->s->istrs[k - 1];
    d->b.intern += INTERN_STEP;
    if (t->len == len) {
      const unsigned char *b = d->p + t->at;
      size_t i = 0;
      while (i < len && b[i] == bytes[i])
        i++;
      d->b.intern += i / 4 + 1;
    }
    if (d->b.intern > limit) {
      d->pos = at;
      dec_fail(d, "too many colliding strings");
    }
  }
  if (id != MC_NOID)
    return;
  if (d->nistrs == MC_NOID - 1)
    dec_nomem(d);
  if (d->nistrs == d->s->istrcap) {
    size_t n = d->s->istrcap ? 2 * d->s->istrcap : 64;
    IStr *a = (IStr *)realloc(d->s->istrs, n * sizeof *a);
    if (a == NULL)
      dec_nomem(d);
    d->s->istrs = a;
    d->s->istrcap = n;
  }
  if (!mc_ptrmap_add(&d->s->seen, str, d->nistrs))
    dec_nomem(d);
  d->s->istrs[d->nistrs].at = d->pos - len;
  d->s->istrs[d->nistrs].len = len;
  d->s->istrs[d->nistrs].prev = (uint32_t)*c;
  d->nistrs++;
  *c = (*c >> 32) << 32 | d->nistrs;
}

/* Pushes the value of tag `tag`, other than a number or a short string,
** whose tag byte was read; returns what dec_value does. */
static int dec_other (Dec *d, int tag) {
  lua_State *L = d->L;
  switch (tag) {
    case TAG_NIL: lua_pushnil(L); break;
    case TAG_FALSE: lua_pushboolean(L, 0); break;
    case TAG_TRUE: lua_pushboolean(L, 1); break;
    case TAG_STR: {
      size_t at = d->pos - 1, len = dec_len(d);
      lua_pushlstring(L, (const char *)d->p + d->pos, len);
      d->pos += len;
      dec_interned(d, at);
      break;
    }
    case TAG_TABLE:
    case TAG_TABLE_MT:
      dec_table(d, tag);
      break;
    case TAG_REF: {
      size_t at = d->pos - 1;
      uint64_t id = dec_varint(d);
      if (id >= d->nobjs) {
        d->pos = at;
        dec_fail(d, "reference to an unknown object");
      }
      get_id(L, d->refs, d->s, (uint32_t)id);
      if (d->s->objs[id].hdr == STRING_OBJ)
        return TAG_STR;  /* a key: counted as any string */
      break;
    }
    case TAG_STRDEF: {
      size_t len, at = d->pos - 1;
      if (!d->shared) {
        d->pos--;
        dec_fail(d, "unknown tag");
      }
      len = dec_len(d);
      lua_pushlstring(L, (const char *)d->p + d->pos, len);
      d->pos += len;
      dec_interned(d, at);
      dec_newobj(d, STRING_OBJ, 0, 0);
      return TAG_STR;
    }
    case TAG_TRANSFER: {
      size_t at = d->pos - 1;
      uint64_t i;
      if (d->xarr == 0) {
        d->pos = at;
        dec_fail(d, "transferred object outside a transfer");
      }
      i = dec_varint(d);
      if (i >= (uint64_t)mc_rawlen(L, d->xarr)) {
        d->pos = at;
        dec_fail(d, "transfer index out of range");
      }
      lua_rawgeti(L, d->xarr, (int)i + 1);
      break;
    }
    default: {
      const mc_Type *t = mc_ctx_type_by_tag(L, tag);
      size_t len;
      if (t == NULL) {
        d->pos--;
        dec_fail(d, "unknown tag");
      }
      len = dec_len(d);
      t->make(L, d->p + d->pos, len);
      d->pos += len;
      dec_newobj(d, NOTABLE, 0, 0);
      break;
    }
  }
  return tag;
}

/* Pushes the number of tag `tag`, TAG_FLOAT or TAG_INT, whose tag byte
** was read, and leaves it in d->x or d->i; returns the tag. */
static int dec_number (Dec *d, int tag) {
  if (tag == TAG_FLOAT) {
    uint64_t u;
    double x;
    dec_need(d, 8);
    u = (uint64_t)get_u32(d->p + d->pos)
        | (uint64_t)get_u32(d->p + d->pos + 4) << 32;
    d->pos += 8;
    memcpy(&x, &u, sizeof x);
    d->x = (lua_Number)x;
    lua_pushnumber(d->L, d->x);
  }
  else {
    uint64_t z = dec_varint(d);
    d->i = (lua_Integer)(int64_t)((z >> 1) ^ (0 - (z & 1)));
#if MC_LUA_INTEGERS
    lua_pushinteger(d->L, d->i);
#else
    lua_pushnumber(d->L, (lua_Number)d->i);
#endif
  }
  return tag;
}

/* Pushes the next value and returns its tag (TAG_STR for any string,
** shared or not); a number is also left in d->i or d->x. Small integers
** and short strings, most values, are read here, without a call; other
** numbers by dec_number, the rest by dec_other. */
static inline int dec_value (Dec *d) {
  lua_State *L = d->L;
  int tag;
  dec_need(d, 1);
  tag = d->p[d->pos++];
  if (tag >= TAG_SMALLINT) {
    d->i = tag - TAG_SMALLINT;
    lua_pushinteger(L, d->i);
    return tag;
  }
  if (tag >= TAG_SHORTSTR && tag <= TAG_SHORTSTR + SHORTSTR_MAX) {
    size_t len = (size_t)(tag - TAG_SHORTSTR);
    dec_need(d, len);
    lua_pushlstring(L, (const char *)d->p + d->pos, len);
    d->pos += len;
    dec_interned(d, d->pos - len - 1);
    return TAG_STR;
  }
  if (tag == TAG_FLOAT || tag == TAG_INT)
    return dec_number(d, tag);
  return dec_other(d, tag);
}

static void dec_body (Dec *d, int t, uint32_t narr, uint32_t nhash) {
  lua_State *L = d->L;
  uint32_t i;
  Fill f;
  for (i = 1; i <= narr; i++) {
    if (stop_now(&d->stop))
      dec_stop(d);
    dec_value(d);
    lua_rawseti(L, t, (int)i);
  }
  d->b.slots += (uint64_t)narr + nhash;
  fill_begin(&f, d->s, nhash);
  for (i = 0; i < nhash; i++) {
    size_t at = d->pos;
    uint64_t h = 0;
    int tag, kind = 0;
    if (stop_now(&d->stop))
      dec_stop(d);
    tag = dec_value(d);
    if (tag == TAG_NIL) {
      d->pos = at;
      dec_fail(d, "nil table key");
    }
    if (tag == TAG_FLOAT && d->x != d->x) {
      d->pos = at;
      dec_fail(d, "NaN table key");
    }
    if (f.lg >= 0) {  /* counted: the key's place, unless in the array part */
      if (tag == TAG_INT || tag >= TAG_SMALLINT)
        kind = d->i >= 1 && (uint64_t)d->i <= narr ? 0 : mc_hashint(d->i, &h);
      else if (tag == TAG_FLOAT)
        kind = mc_hashnum(d->x, &h);
      else if (MC_HASH_STRINGS && tag == TAG_STR)
        kind = mc_keyhash(L, -1, &h);
    }
    if (kind != 0) {
      if (!fill_ready(&f, d->s))
        dec_nomem(d);
      d->b.fill += fill_key(&f, d->s, kind, h);
      if (over_budget(d->b.fill, d->b.slots)) {
        d->pos = at;
        dec_fail(d, "too many colliding keys");
      }
    }
    dec_value(d);
    lua_rawset(L, t);
  }
}

/* Decodes n bytes at p and pushes the value, above the slots of the ids.
** The scratch s, taken, is at stack index sidx; only its objs are used,
** so p may be its bytes. On error the scratch is given back. */
static void decode (lua_State *L, Scratch *s, int sidx,
                    const unsigned char *p, size_t n, int xarr) {
  Dec d;
  uint32_t id;
  d.L = L;
  d.xarr = xarr;
  d.s = s;
  d.sidx = sidx;
  d.refs = push_ids(L, s);
  d.p = p;
  d.n = n;
  d.pos = 0;
  d.claimed = 0;
  d.nobjs = 0;
  d.ncells = (size_t)-1;
  d.nistrs = 0;
  memset(&d.b, 0, sizeof d.b);
  stop_begin(&d.stop, L);
  if (n == 0)
    dec_fail(&d, "empty input");
  if (p[0] != FORMAT_VERSION && p[0] != FORMAT_SHARED)
    dec_fail(&d, "unsupported format version");
  d.shared = p[0] == FORMAT_SHARED;
  d.pos = 1;
  dec_value(&d);  /* refs, value */
  for (id = 0; id < d.nobjs; id++) {
    Obj o = d.s->objs[id];
    if (o.hdr == NOTABLE || o.hdr == STRING_OBJ)
      continue;
    dec_body(&d, id_at(L, d.refs, d.s, id), o.narr, o.nhash);
    if (id >= STACK_IDS)  /* id_at pushed it */
      lua_pop(L, 1);
  }
  if (d.pos != n)
    dec_fail(&d, "trailing bytes after the value");
  set_metatables(L, d.refs, d.s);
}

/* }====================================================== */


/*
** {======================================================
** Direct copy: structuredClone within one Lua state. The same rules as the
** encoder, without the bytes in between; strings are immutable, so the copy
** shares them instead of making them again. Bodies are copied depth first
** while the depth is small, with the tables on the Lua stack; deeper tables
** wait in a queue and are copied from depth 0 later, so C recursion stays
** bounded and any nesting works.
** =======================================================
*/

#define COPY_DEPTH 64

typedef struct Copy {
  lua_State *L;
  Scratch *s;
  int sidx;
  int root;
  int dst;       /* stack index of the table id -> copy */
  int deferred;  /* stack index of the array of originals waiting */
  int mt2name;
  int orig;      /* stack index of the table id -> original; the
                 ** STACK_IDS slots below it hold the first ones */
  int xmap;      /* stack index of the transfer list, or 0 */
  int blanks;    /* and of the new objects for its entries */
  int depth;
  uint32_t nobjs;
  int ndeferred;
  Budget b;
  Stop stop;
} Copy;

static void copy_fail (Copy *c, const char *what, const Where *w) {
  give_scratch(c->L, c->sidx, c->s);
  clone_fail(c->L, c->root, what, w);
}

static void copy_nomem (Copy *c) {
  give_scratch(c->L, c->sidx, c->s);
  luaL_error(c->L, "not enough memory");
}

static void copy_collide (Copy *c, int t) {
  give_scratch(c->L, c->sidx, c->s);
  collide_fail(c->L, c->root, t);
}

static void copy_stop (Copy *c) {
  give_scratch(c->L, c->sidx, c->s);
  mc_ctx_arm_stop(c->L);
  luaL_error(c->L, "DataCloneError: the thread is stopping");
}

/* Records the copy at the top as the copy of the object at stack index
** idx, address p. The original is kept until the copy ends: a __gc run
** meanwhile may drop it from the value, and Lua may then give its address
** to a new object put in the value, which must not be taken for it. */
static void copy_newobj (Copy *c, int idx, const void *p) {
  lua_State *L = c->L;
  uint32_t id = c->nobjs;
  if (id == MC_NOID - 1 || !mc_ptrmap_add(&c->s->seen, p, id))
    copy_nomem(c);
  c->nobjs++;
  set_id(L, c->dst, c->s, id, lua_gettop(L));
  if (id < STACK_IDS)
    mc_copy_slot(L, idx, c->orig - STACK_IDS + (int)id);
  else {
    if (id == STACK_IDS) {  /* made when first needed */
      lua_createtable(L, c->s->lastids, 0);
      lua_replace(L, c->orig);
    }
    lua_pushvalue(L, idx);
    lua_rawseti(L, c->orig, (int)(id - STACK_IDS) + 1);
  }
}

static void copy_value (Copy *c, int idx, const Where *w);

/* Copies the pair at stack indices w->k, w->k + 1 into table d. */
static void copy_pair (Copy *c, Where *w, int d) {
  w->askey = 1;
  copy_value(c, w->k, w);
  w->askey = 0;
  copy_value(c, w->k + 1, w);  /* k, v, k', v' */
  lua_rawset(c->L, d);
}

/* Copies the pairs of table t into table d. */
static void copy_body (Copy *c, int t, int d) {
  lua_State *L = c->L;
  Where w;
  w.t = t;
  w.k = lua_gettop(L) + 1;
  w.i = 0;
  luaL_checkstack(L, 8, "copy");
  lua_pushnil(L);
  while (lua_next(L, t)) {  /* k, v */
    if (stop_now(&c->stop))
      copy_stop(c);
    copy_pair(c, &w, d);
    lua_pop(L, 1);
  }
}

/*
** Counts the pairs of the table at idx, whose array part holds 1..*narr
** (made no more than the pairs): the copy is sized like the original, as
** growing a table costs more than counting. The count is a walk as the
** copy's is, and "Colliding keys" counts one of them (the budget is per
** pass over the keys) and the filling of the copy. A table of fewer than
** FILL_MIN pairs costs little: its keys are looked at only once there
** are that many, from the first.
*/
static size_t copy_count (Copy *c, int idx, size_t *narr) {
  lua_State *L = c->L;
  size_t n = 0, nodekeys = 0;
  uint64_t fill;
  int each = 0;  /* looking at each key */
  Walk walk;
  walk_begin(&walk, c->s);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    uint64_t h = 0;
    int kind, grew;
    if (++n == FILL_MIN && !each) {  /* again from the first */
      lua_pop(L, 2);
      lua_pushnil(L);
      n = 0;
      each = 1;
      continue;
    }
    if (each) {
      kind = key_hash(L, -2, (lua_Integer)*narr, &h);
      nodekeys += kind >= 0;
      if (kind > 0
          && (grew = walk_key(&walk, c->s, kind, h, nodekeys)) != 0) {
        if (grew < 0)
          copy_nomem(c);
        if (over_budget(c->b.walk + walk_cost(&walk, nodekeys, 0),
                        c->b.slots + n))
          copy_collide(c, idx);
      }
    }
    if (stop_now(&c->stop))
      copy_stop(c);
    lua_pop(L, 1);
  }
  if (*narr > n)
    *narr = n;
  c->b.slots += n;
  c->b.walk += walk_cost(&walk, nodekeys, 1);
  if ((fill = fill_again(c->s, n - *narr)) == (uint64_t)-1)
    copy_nomem(c);
  c->b.fill += fill;
  if (over_budget(c->b.walk, c->b.slots) || over_budget(c->b.fill, c->b.slots))
    copy_collide(c, idx);
  return n;
}

/*
** A table of fewer than SMALL_PAIRS pairs is walked once: its pairs are
** pushed as they come, and its copy, made to their count, takes them from
** the stack. Colliding keys cannot cost such a table anything (FILL_MIN).
** Returns how many pairs were pushed (above the stack's top at the call),
** or -1 (nothing pushed) for a larger table.
*/
#define SMALL_PAIRS 16

static int copy_pairs (Copy *c, int idx) {
  lua_State *L = c->L;
  int top = lua_gettop(L), n = 0;
  luaL_checkstack(L, 2 * SMALL_PAIRS + 8, "messagechannel");
  lua_pushnil(L);
  while (lua_next(L, idx)) {  /* ..., k, v */
    if (++n == SMALL_PAIRS) {
      lua_settop(L, top);
      return -1;
    }
    lua_pushvalue(L, -2);  /* the next lua_next's key */
  }
  if (stop_now(&c->stop))
    copy_stop(c);
  return n;
}

/* Copies the n pairs pushed by copy_pairs (the first key at stack index
** k) into the table at the top. */
static void copy_pushed (Copy *c, int t, int k, int n) {
  int d = lua_gettop(c->L), i;
  Where w;
  w.t = t;
  w.i = 0;
  for (i = 0; i < n; i++, k += 2) {
    w.k = k;
    copy_pair(c, &w, d);
  }
}

static void copy_table (Copy *c, int idx, const Where *w) {
  lua_State *L = c->L;
  const void *p = lua_topointer(L, idx);
  uint32_t id = mc_ptrmap_get(&c->s->seen, p);
  size_t n, narr = mc_rawlen(L, idx);
  int pushed, k = lua_gettop(L) + 1, hasmt;
  if (id != MC_NOID) {
    get_id(L, c->dst, c->s, id);
    return;
  }
  if ((hasmt = lua_getmetatable(L, idx)) != 0) {
    if (own_object(L, -1))
      copy_fail(c, lua_tostring(L, -1), w);
    lua_pop(L, 2);
  }
  pushed = copy_pairs(c, idx);
  if (pushed >= 0) {
    n = (size_t)pushed;
    if (narr > n)
      narr = n;
    c->b.slots += n;
  }
  else
    n = copy_count(c, idx, &narr);
  lua_createtable(L, size_hint(narr), size_hint(n - narr));
  if (hasmt && lua_getmetatable(L, idx)) {  /* copy, mt */
    lua_pushvalue(L, -1);
    lua_rawget(L, c->mt2name);
    if (lua_isnil(L, -1))
      lua_pop(L, 2);
    else {
      lua_pop(L, 1);
      defer_metatable(L, c->dst, c->s);
    }
  }
  copy_newobj(c, idx, p);
  if (pushed > 0) {  /* its pairs wait below the copy */
    if (c->depth < COPY_DEPTH) {
      c->depth++;
      copy_pushed(c, idx, k, pushed);
      c->depth--;
      n = 0;  /* done */
    }
    lua_replace(L, k);
    lua_settop(L, k);
  }
  if (n == 0)
    return;
  if (c->depth < COPY_DEPTH) {
    c->depth++;
    copy_body(c, idx, lua_gettop(L));
    c->depth--;
  }
  else {  /* its copy is found again by id: keep the original in line */
    if (c->ndeferred == INT_MAX - 1)
      luaL_error(L, "not enough memory");
    lua_pushvalue(L, idx);
    if (c->ndeferred == 0) {  /* made when first needed */
      lua_newtable(L);
      lua_replace(L, c->deferred);
    }
    lua_rawseti(L, c->deferred, ++c->ndeferred);
  }
}

/* Pushes the copy of the value at idx. */
static void copy_value (Copy *c, int idx, const Where *w) {
  lua_State *L = c->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING:
      lua_pushvalue(L, idx);
      break;
    case LUA_TTABLE:
      copy_table(c, idx, w);
      break;
    default: {
      const mc_Type *t = NULL;
      const char *bad;
      void *obj;
      uint32_t id;
      if (c->xmap != 0) {  /* moved: the new object made for it */
        lua_pushvalue(L, idx);
        lua_rawget(L, c->xmap);
        if (!lua_isnil(L, -1)) {
          lua_Integer i = lua_tointeger(L, -1);
          lua_pop(L, 1);
          lua_rawgeti(L, c->blanks, (int)i);
          break;
        }
        lua_pop(L, 1);
      }
      bad = not_cloneable(L, idx, &t);
      if (bad != NULL)
        copy_fail(c, bad, w);
      obj = lua_touserdata(L, idx);
      id = mc_ptrmap_get(&c->s->seen, obj);
      if (id != MC_NOID)
        get_id(L, c->dst, c->s, id);
      else {
        bad = t->copy(L, obj);  /* a finalizer may have detached it */
        if (bad != NULL)
          copy_fail(c, bad, w);
        copy_newobj(c, idx, obj);
      }
      break;
    }
  }
}

void mc_copy (lua_State *L, int idx, int xmap, int blanks) {
  Copy c;
  Where w;
  int i;
  memset(&w, 0, sizeof w);
  c.L = L;
  c.root = mc_absindex(L, idx);
  c.s = take_scratch(L);
  c.sidx = lua_gettop(L);
  c.dst = push_ids(L, c.s);  /* cleared as the scratch goes back */
  lua_pushnil(L);  /* the queue of deferred tables, made when needed */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_MT2NAME);
  c.deferred = c.dst + 1;
  c.mt2name = c.dst + 2;
  luaL_checkstack(L, STACK_IDS + 8, "messagechannel");
  lua_settop(L, c.mt2name + STACK_IDS + 1);
  c.orig = lua_gettop(L);
  c.xmap = xmap;
  c.blanks = blanks;
  c.depth = 0;
  c.nobjs = 0;
  c.ndeferred = 0;
  memset(&c.b, 0, sizeof c.b);
  stop_begin(&c.stop, L);
  copy_value(&c, c.root, &w);  /* scratch, dst, deferred, mt2name, orig,
                               ** copy */
  for (i = 1; i <= c.ndeferred; i++) {  /* the queue grows as it goes */
    int t = c.orig + 2;
    lua_rawgeti(L, c.deferred, i);
    get_id(L, c.dst, c.s, mc_ptrmap_get(&c.s->seen, lua_topointer(L, t)));
    copy_body(&c, t, t + 1);
    lua_pop(L, 2);
    lua_pushnil(L);
    lua_rawseti(L, c.deferred, i);  /* let it go */
  }
  set_metatables(L, c.dst, c.s);
  give_scratch(L, c.sidx, c.s);
  lua_replace(L, c.sidx);
  lua_settop(L, c.sidx);
}

/* }====================================================== */


mc_Bytes *mc_encode (lua_State *L, int idx, int xmap) {
  Enc e;
  encode(&e, L, idx, xmap);
  lua_settop(L, e.sidx);
  return &e.s->out;
}

void mc_encode_done (lua_State *L, int sidx) {
  give_scratch(L, sidx, (Scratch *)lua_touserdata(L, sidx));
  lua_remove(L, sidx);
}

void mc_decode (lua_State *L, const unsigned char *p, size_t n, int xarr) {
  Scratch *s = take_scratch(L);
  int sidx = lua_gettop(L);
  decode(L, s, sidx, p, n, xarr);  /* scratch, ids, value */
  give_scratch(L, sidx, s);
  lua_replace(L, sidx);
  lua_settop(L, sidx);
}

/* serialize and deserialize leave what they push below their result. */
int mc_serialize (lua_State *L) {
  Enc e;
  luaL_checkany(L, 1);
  encode(&e, L, 1, 0);  /* v, ..., scratch, ids */
  lua_pushlstring(L, (const char *)e.s->out.p, e.s->out.n);
  give_scratch(L, e.sidx, e.s);
  return 1;
}

int mc_deserialize (lua_State *L) {
  size_t n;
  const char *s;
  Scratch *sc;
  int sidx;
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_argerror(L, 1, lua_pushfstring(L, "string expected, got %s",
                                        mc_ctx_typename(L, 1)));
  s = lua_tolstring(L, 1, &n);
  sc = take_scratch(L);
  sidx = lua_gettop(L);
  decode(L, sc, sidx, (const unsigned char *)s, n, 0);
  give_scratch(L, sidx, sc);
  return 1;
}

int mc_register (lua_State *L) {
  size_t len;
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_argerror(L, 1, lua_pushfstring(L, "string expected, got %s",
                                        mc_ctx_typename(L, 1)));
  lua_tolstring(L, 1, &len);
  luaL_argcheck(L, len > 0, 1, "name must not be empty");
  mc_ctx_checktable(L, 2);
  lua_settop(L, 2);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_NAME2MT);  /* name, mt, n2m */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_MT2NAME);  /* ..., m2n */
  lua_pushvalue(L, 1);
  lua_rawget(L, 3);
  if (!lua_isnil(L, -1) && !lua_rawequal(L, -1, 2))
    return luaL_error(L, "name '%s' is already registered with another "
                         "metatable", lua_tostring(L, 1));
  lua_pushvalue(L, 2);
  lua_rawget(L, 4);
  if (!lua_isnil(L, -1) && !lua_rawequal(L, -1, 1))
    return luaL_error(L, "metatable is already registered as '%s'",
                      lua_tostring(L, -1));
  lua_pop(L, 2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, 3);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_rawset(L, 4);
  lua_settop(L, 2);
  return 1;
}

int mc_not_cloneable (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OWN_MT);
  lua_insert(L, 1);
  lua_rawset(L, 1);
  return 0;
}

/*
** Whether mc_keyhash and mc_nodelg agree with the running Lua: keys of
** every kind it counts, with main positions apart, go into an empty table,
** and lua_next, which walks the hash part in node order, must give them
** in the order of those positions.
*/
static int keyhash_matches (lua_State *L) {
  int lg, i, ok = 1;
  for (lg = 4; lg <= 6 && ok; lg += 2) {
    uint64_t used = 0, h;
    int n = 0, last = -1, kind;
    lua_createtable(L, 0, (1 << lg) - 1);
    ok = mc_nodelg((1ul << lg) - 1) == lg;
    for (i = 1; i <= 400 && n < 1 << (lg - 1); i++) {
      switch (i % 5) {  /* small and large integers, floats, strings */
        case 0: lua_pushinteger(L, (lua_Integer)i * 7919); break;
        case 1: lua_pushnumber(L, -(lua_Number)i * 1099511627776.0 - 3); break;
        case 2: lua_pushnumber(L, (lua_Number)i + 0.25); break;
        case 3: lua_pushnumber(L, (lua_Number)i * 1e-3 + 1e100 / i); break;
        default: lua_pushfstring(L, "key%d", i); break;
      }
      kind = mc_keyhash(L, -1, &h);  /* a seeded one cannot be checked */
      if (kind != 0 && !(kind & MC_HASH_SEEDED)
          && !(used >> main_position(kind, h, lg) & 1)) {
        used |= (uint64_t)1 << main_position(kind, h, lg);
        n++;
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
      }
      else
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      int pos = (kind = mc_keyhash(L, -2, &h)) != 0
                ? (int)main_position(kind, h, lg) : -1;
      ok = ok && pos > last;
      last = pos;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return ok;
}

void mc_codec_open (lua_State *L) {
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch__gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, keyhash_matches(L));
    lua_setfield(L, -2, "keyhash");
  }
  lua_pop(L, 1);
}
