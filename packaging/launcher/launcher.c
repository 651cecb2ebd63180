/* The front of dist/transporter: a static program followed by a deflated payload (the
 * PyInstaller one-folder program and the glibc it was built with) and a trailer that names the
 * payload's SHA-256. It unpacks the payload once into <root>/<sha256>/ and from then on runs the
 * program from there at once, writing nothing. See packaging/launcher/README.md.
 *
 * Its only inputs are the environment, the file system and its own file (written by
 * packaging/launcher/pack.py). Every failure is one line on stderr naming the fix, and exit
 * code 126 (the shell's "found but cannot run"). */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#define EXIT_LAUNCH 126
#define TRAILER_SIZE 160
#define TRAILER_MAGIC "TRANSPORTER-PAYLOAD-1 "
#define HASH_LEN 64
#define MARKER ".complete"
#define LOADER "_internal/ld-linux-x86-64.so.2"
#define PROGRAM "transporter"
#define LIBDIR "_internal"
#define CHUNK (256 * 1024)

static const char *self_path;
static char partial_path[PATH_MAX]; /* removed if we die while unpacking into it */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *fmt, ...) {
    va_list ap;
    if (partial_path[0] != '\0')
        remove_tree(partial_path);
    va_start(ap, fmt);
    fputs("transporter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_LAUNCH);
}

static void join(char *out, const char *a, const char *b) {
    if (snprintf(out, PATH_MAX, "%s/%s", a, b) >= PATH_MAX)
        die("path too long: %s/%s: set TRANSPORTER_UNPACK_DIR to a shorter folder", a, b);
}

/* --- our own file and its trailer ------------------------------------------------------ */

struct payload {
    int fd;
    uint64_t offset, length;
    char hash[HASH_LEN + 1];
};

static const char *find_self(char *buf) {
    ssize_t n = readlink("/proc/self/exe", buf, PATH_MAX - 1);
    if (n > 0) {
        buf[n] = '\0';
        return buf;
    }
    /* No /proc (an empty root): the path the kernel was given, made absolute. */
    const char *given = (const char *)getauxval(AT_EXECFN);
    if (given == NULL || realpath(given, buf) == NULL)
        die("cannot find my own file (no /proc, and %s): mount /proc or run me by a path",
            given ? given : "no AT_EXECFN");
    return buf;
}

static void read_trailer(struct payload *p) {
    char t[TRAILER_SIZE + 1];
    struct stat st;
    p->fd = open(self_path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0 || fstat(p->fd, &st) != 0 || st.st_size < TRAILER_SIZE ||
        pread(p->fd, t, TRAILER_SIZE, st.st_size - TRAILER_SIZE) != TRAILER_SIZE)
        die("cannot read my own file %s: %s", self_path, strerror(errno));
    t[TRAILER_SIZE] = '\0';
    int used = 0;
    if (strncmp(t, TRAILER_MAGIC, strlen(TRAILER_MAGIC)) != 0 ||
        sscanf(t + strlen(TRAILER_MAGIC), "%20" SCNu64 " %20" SCNu64 " %64[0-9a-f]%n",
               &p->offset, &p->length, p->hash, &used) != 3 ||
        strlen(p->hash) != HASH_LEN || p->offset + p->length > (uint64_t)st.st_size)
        die("%s is damaged (no payload trailer): download it again", self_path);
}

/* --- where to unpack ----------------------------------------------------------------- */

/* A folder in a shared temp folder must be ours: made by us, or a real folder (not a symlink)
 * owned by our uid with no access for anyone else. With `quiet`, one that is not is -1 (an
 * earlier root may do: another user's folder there must not stop us using it), else an error. */
static int own_private_folder(const char *path, int quiet) {
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    if (lstat(path, &st) != 0)
        return -1;
    if (quiet && (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
                  (st.st_mode & 077) != 0))
        return -1;
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
        die("refusing to unpack into %s: it is not a folder (a symlink?): remove it or set "
            "TRANSPORTER_UNPACK_DIR", path);
    if (st.st_uid != geteuid())
        die("refusing to unpack into %s: it belongs to uid %u, not to us (uid %u): remove it or "
            "set TRANSPORTER_UNPACK_DIR", path, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 077) != 0)
        die("refusing to unpack into %s: its mode is %03o, not 700: remove it or set "
            "TRANSPORTER_UNPACK_DIR", path, (unsigned)(st.st_mode & 0777));
    return 0;
}

/* mkdir -p for folders of our own user (the cache under HOME or TRANSPORTER_UNPACK_DIR). */
static int make_folders(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

#define MAX_ROOTS 3
struct roots {
    int count;
    int shared[MAX_ROOTS]; /* in a shared temp folder: must be ours */
    char path[MAX_ROOTS][PATH_MAX];
    const char *named_by[MAX_ROOTS]; /* what the user sets to move it */
};

static void add_root(struct roots *r, const char *base, const char *leaf, int shared,
                     const char *named_by) {
    if (base == NULL || base[0] != '/' || r->count == MAX_ROOTS)
        return;
    if (snprintf(r->path[r->count], PATH_MAX, leaf[0] ? "%s/%s" : "%s", base, leaf) >= PATH_MAX)
        return;
    r->shared[r->count] = shared;
    r->named_by[r->count] = named_by;
    r->count++;
}

static void find_roots(struct roots *r) {
    const char *chosen = getenv("TRANSPORTER_UNPACK_DIR");
    r->count = 0;
    if (chosen != NULL && chosen[0] != '\0') {
        if (chosen[0] != '/')
            die("TRANSPORTER_UNPACK_DIR must be an absolute path, not %s", chosen);
        add_root(r, chosen, "", 0, "TRANSPORTER_UNPACK_DIR");
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg != NULL && xdg[0] == '/')
        add_root(r, xdg, "transporter", 0, "XDG_CACHE_HOME");
    else if (getenv("HOME") != NULL && getenv("HOME")[0] == '/') {
        char cache[PATH_MAX];
        if (snprintf(cache, sizeof cache, "%s/.cache", getenv("HOME")) < (int)sizeof cache)
            add_root(r, cache, "transporter", 0, "HOME");
    }
    const char *tmp = getenv("TMPDIR");
    char leaf[64];
    snprintf(leaf, sizeof leaf, "transporter-%u", (unsigned)geteuid());
    add_root(r, tmp != NULL && tmp[0] == '/' ? tmp : "/tmp", leaf, 1,
             tmp != NULL && tmp[0] == '/' ? "TMPDIR" : "/tmp");
}

/* --- unpacking ------------------------------------------------------------------------- */

struct inflater {
    z_stream z;
    int fd;
    uint64_t left;
    unsigned char in[CHUNK];
    int done;
};

/* More compressed bytes from the file when the inflater has used what it had. */
static void refill(struct inflater *f) {
    if (f->z.avail_in != 0 || f->left == 0)
        return;
    ssize_t n = read(f->fd, f->in, f->left < CHUNK ? (size_t)f->left : CHUNK);
    if (n <= 0)
        die("cannot read my own file %s: %s", self_path, n ? strerror(errno) : "short");
    f->left -= (uint64_t)n;
    f->z.next_in = f->in;
    f->z.avail_in = (uInt)n;
}

static void take(struct inflater *f, void *out, size_t size) {
    f->z.next_out = out;
    f->z.avail_out = (uInt)size;
    while (f->z.avail_out > 0) {
        refill(f);
        int rc = inflate(&f->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END && f->z.avail_out > 0)
            die("%s is damaged (payload ends early): download it again", self_path);
        if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && f->left > 0))
            die("%s is damaged (payload: %s): download it again", self_path,
                f->z.msg ? f->z.msg : "inflate");
    }
}

/* After the last record: the stream must end there, with its checksum (adler32) right. */
static void finish(struct inflater *f) {
    unsigned char extra;
    f->z.next_out = &extra;
    f->z.avail_out = 1;
    for (;;) {
        refill(f);
        int rc = inflate(&f->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END && f->z.avail_out == 1)
            return;
        if (f->z.avail_out == 0 || (rc != Z_OK && !(rc == Z_BUF_ERROR && f->left > 0)))
            die("%s is damaged (payload: %s): download it again", self_path,
                f->z.msg ? f->z.msg : "no end");
    }
}

/* The payload's own entries: a type byte, mode, path length, data length, path, data. */
static int safe_name(const char *name) {
    if (name[0] == '\0' || name[0] == '/')
        return 0;
    for (const char *p = name; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return 0;
    return 1;
}

static void fail_write(const char *path, const char *root) {
    int e = errno;
    die("cannot unpack into %s (%s): %s: set TRANSPORTER_UNPACK_DIR to a writable folder%s", root,
        path, strerror(e), e == ENOSPC ? " with more room" : "");
}

static void unpack(struct payload *p, const char *dir, const char *root) {
    static struct inflater f;
    static unsigned char buf[CHUNK];
    memset(&f.z, 0, sizeof f.z);
    if (inflateInit(&f.z) != Z_OK || lseek(p->fd, (off_t)p->offset, SEEK_SET) < 0)
        die("cannot read my own file %s", self_path);
    f.fd = p->fd;
    f.left = p->length;
    for (;;) {
        unsigned char head[1 + 4 + 4 + 8];
        take(&f, head, sizeof head);
        char kind = (char)head[0];
        uint32_t mode, name_len;
        uint64_t size;
        memcpy(&mode, head + 1, 4);
        memcpy(&name_len, head + 5, 4);
        memcpy(&size, head + 9, 8);
        if (kind == 'E')
            break;
        char name[PATH_MAX], path[PATH_MAX];
        if (name_len == 0 || name_len >= PATH_MAX / 2)
            die("%s is damaged (entry name): download it again", self_path);
        take(&f, name, name_len);
        name[name_len] = '\0';
        if (!safe_name(name) || strlen(name) != name_len)
            die("%s is damaged (entry %s): download it again", self_path, name);
        join(path, dir, name);
        if (kind == 'D') {
            if (mkdir(path, mode & 0755) != 0)
                fail_write(path, root);
        } else if (kind == 'L') {
            char target[PATH_MAX];
            if (size >= PATH_MAX)
                die("%s is damaged (link %s): download it again", self_path, name);
            take(&f, target, (size_t)size);
            target[size] = '\0';
            if (target[0] == '/' || symlink(target, path) != 0)
                fail_write(path, root);
        } else if (kind == 'F') {
            int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0755);
            if (out < 0)
                fail_write(path, root);
            while (size > 0) {
                size_t n = size < CHUNK ? (size_t)size : CHUNK;
                take(&f, buf, n);
                if (write(out, buf, n) != (ssize_t)n)
                    fail_write(path, root);
                size -= n;
            }
            if (close(out) != 0)
                fail_write(path, root);
        } else {
            die("%s is damaged (entry kind): download it again", self_path);
        }
    }
    finish(&f);
    inflateEnd(&f.z);
}

static int is_complete(const char *folder) {
    char marker[PATH_MAX];
    join(marker, folder, MARKER);
    return access(marker, F_OK) == 0;
}

/* --- whose folders we run from --------------------------------------------------------- */

/* Who may have written a folder we run a program from: us, or root (an image unpacked by root
 * and run as another user). */
static int trusted_owner(uid_t uid) {
    return uid == geteuid() || uid == 0;
}

/* Why no one should run a program from <root>/<hash>, judging <root> (followed: a symlink there
 * is the user's choice, systemd's CacheDirectory with DynamicUser is one); NULL if it is fine.
 * Others may replace a folder in it unless it is ours or root's and writable by no one else,
 * or sticky (as /tmp) and the hash folder is ours (checked by found_problem). */
static const char *root_problem(const char *root, char *why, size_t size) {
    struct stat st;
    if (stat(root, &st) != 0)
        return NULL; /* nothing there: made below, as ours */
    if (!trusted_owner(st.st_uid))
        snprintf(why, size, "it belongs to uid %u, not to us (uid %u) or root", (unsigned)st.st_uid,
                 (unsigned)geteuid());
    else if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)
        snprintf(why, size, "its mode %03o lets others replace what is in it",
                 (unsigned)(st.st_mode & 0777));
    else
        return NULL;
    return why;
}

/* Why no one should run the program in <root>/<hash> (found there, maybe planted: its hash is
 * public in our trailer); NULL if it is fine. */
static const char *found_problem(const char *root, const char *folder, char *why, size_t size) {
    struct stat st, rs;
    if (lstat(folder, &st) != 0)
        return NULL;
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
        snprintf(why, size, "%s is not a folder (a symlink?)", folder);
    else if (!trusted_owner(st.st_uid))
        snprintf(why, size, "%s belongs to uid %u, not to us (uid %u) or root", folder,
                 (unsigned)st.st_uid, (unsigned)geteuid());
    else if ((st.st_mode & 022) != 0)
        snprintf(why, size, "%s has mode %03o: others may write to it", folder,
                 (unsigned)(st.st_mode & 0777));
    else if (root_problem(root, why, size) != NULL)
        return why;
    else if (stat(root, &rs) == 0 && (rs.st_mode & 022) != 0 && st.st_uid != geteuid())
        snprintf(why, size, "%s belongs to uid %u in a folder anyone may write to (%s)", folder,
                 (unsigned)st.st_uid, root);
    else
        return NULL;
    return why;
}

static void refuse_found(const char *root, const char *folder) {
    char why[PATH_MAX + 128];
    if (found_problem(root, folder, why, sizeof why) != NULL)
        die("refusing to run the program in %s: %s: remove it, or set TRANSPORTER_UNPACK_DIR to "
            "a folder of yours", root, why);
}

/* A folder of ours that is not complete (a temp cleaner removed its .complete, which nothing
 * reads, so its atime ages): move it aside (rename: atomic), then remove it. 1 if it is gone. */
static int move_aside(const char *folder) {
    struct stat st;
    char stale[PATH_MAX];
    if (lstat(folder, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022) != 0 || is_complete(folder))
        return 0;
    if (snprintf(stale, sizeof stale, "%s.stale-XXXXXX", folder) >= (int)sizeof stale ||
        mkdtemp(stale) == NULL)
        return 0;
    if (rename(folder, stale) != 0) { /* onto the empty folder just made */
        rmdir(stale);
        return 0;
    }
    remove_tree(stale);
    return 1;
}

static int noexec(const char *root) {
    struct statvfs vfs;
    return statvfs(root, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC);
}

/* The program's PT_INTERP (the loader the kernel starts it with) is a long placeholder in the
 * payload: point it at the loader in <folder>, the path the folder will have once renamed. */
static void set_interpreter(const char *partial, const char *folder, const char *root) {
    char program[PATH_MAX], loader[PATH_MAX];
    join(program, partial, PROGRAM);
    join(loader, folder, LOADER);
    int fd = open(program, O_RDWR | O_CLOEXEC);
    Elf64_Ehdr eh;
    if (fd < 0 || pread(fd, &eh, sizeof eh, 0) != sizeof eh)
        fail_write(program, root);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr))
        die("%s is damaged (program is not ELF64): download it again", self_path);
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != sizeof ph)
            fail_write(program, root);
        if (ph.p_type != PT_INTERP)
            continue;
        char field[PATH_MAX] = {0};
        if (strlen(loader) + 1 > ph.p_filesz || ph.p_filesz > sizeof field)
            die("the unpack folder's path %s is too long (at most %d bytes): set "
                "TRANSPORTER_UNPACK_DIR to a shorter one", root,
                (int)(ph.p_filesz - 1 - (strlen(loader) - strlen(root))));
        memcpy(field, loader, strlen(loader));
        if (pwrite(fd, field, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz ||
            close(fd) != 0)
            fail_write(program, root);
        return;
    }
    die("%s is damaged (program has no PT_INTERP): download it again", self_path);
}

/* Unpack into <root>/<hash>.partial-<pid>-<random>, then rename it into place: a start that
 * loses the race to another one removes its own copy and uses the winner's. The name is
 * random, not the pid alone: starts in other pid namespaces (containers, each pid 1) may
 * share the folder, and one must never write into, or remove, another's copy. */
static int unpack_into(struct payload *p, const char *root, const char *folder) {
    char partial[PATH_MAX], marker[PATH_MAX];
    if (snprintf(partial, sizeof partial, "%s.partial-%ld-XXXXXX", folder, (long)getpid()) >=
        (int)sizeof partial)
        die("path too long: %s: set TRANSPORTER_UNPACK_DIR to a shorter folder", folder);
    if (mkdtemp(partial) == NULL)
        return -1;
    memcpy(partial_path, partial, sizeof partial);
    mode_t mask = umask(0);
    umask(mask);
    if (chmod(partial, 0755 & ~mask) != 0) /* mkdtemp's is 0700; as mkdir(0755) would make it */
        fail_write(partial, root);
    unpack(p, partial, root);
    set_interpreter(partial, folder, root);
    join(marker, partial, MARKER);
    int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        fail_write(marker, root);
    syncfs(fd); /* the files on disk before the name that says they are complete */
    close(fd);
    if (rename(partial, folder) != 0) {
        if (errno != EEXIST && errno != ENOTEMPTY)
            fail_write(folder, root);
        /* An incomplete folder of ours is stale: ours replaces it. Else another start won the
         * race: use its folder. */
        if (!move_aside(folder) || rename(partial, folder) != 0)
            remove_tree(partial);
    }
    partial_path[0] = '\0';
    return 0;
}

/* --- running it ------------------------------------------------------------------------ */

/* PyInstaller's bootloader finds its _internal folder beside argv[0] when there is no /proc
 * (an empty root), and starts itself again through the PT_INTERP set above. It needs glibc from
 * _internal from its first instruction, and $ORIGIN means nothing without /proc: so the
 * library path is set here. packaging/launcher/rthook_argv0.py sets it back as the user had it
 * (TRANSPORTER_LAUNCHER_LD_LIBRARY_PATH) and gives Python the user's argv[0]. */
static void run(const char *folder, const char *root, int argc, char **argv) {
    char program[PATH_MAX];
    join(program, folder, PROGRAM);
    char **args = calloc((size_t)argc + 2, sizeof *args); /* argc may be 0: room for NULL */
    if (args == NULL)
        die("out of memory");
    args[0] = program;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    char libdir[PATH_MAX];
    join(libdir, folder, LIBDIR);
    const char *user_path = getenv("LD_LIBRARY_PATH");
    if ((user_path != NULL && setenv("TRANSPORTER_LAUNCHER_LD_LIBRARY_PATH", user_path, 1) != 0) ||
        setenv("LD_LIBRARY_PATH", libdir, 1) != 0 ||
        setenv("TRANSPORTER_LAUNCHER_ARGV0", argc > 0 ? argv[0] : "transporter", 1) != 0 ||
        setenv("TRANSPORTER_LAUNCHER_FILE", self_path, 1) != 0)
        die("out of memory");
    execv(program, args);
    if (errno == EACCES && noexec(root))
        die("cannot run programs from %s (mounted noexec): set TRANSPORTER_UNPACK_DIR to a "
            "folder on a mount that allows exec", root);
    die("cannot run %s: %s: remove %s to unpack it again, or set TRANSPORTER_UNPACK_DIR", program,
        strerror(errno), folder);
}

int main(int argc, char **argv) {
    static char self[PATH_MAX];
    struct payload p;
    struct roots r;
    char folder[PATH_MAX];
    self_path = find_self(self);
    read_trailer(&p);
    find_roots(&r);
    /* Already unpacked (by us, or by an image build into a read-only folder): run it. */
    for (int i = 0; i < r.count; i++) {
        join(folder, r.path[i], p.hash);
        struct stat st;
        if (r.shared[i] && lstat(r.path[i], &st) == 0 && own_private_folder(r.path[i], 1) != 0)
            continue;
        refuse_found(r.path[i], folder);
        if (is_complete(folder))
            run(folder, r.path[i], argc, argv);
    }
    char tried[PATH_MAX * MAX_ROOTS] = "";
    const char *noexec_root = NULL;
    for (int i = 0; i < r.count; i++) {
        int made = r.shared[i] ? own_private_folder(r.path[i], 0) : make_folders(r.path[i]);
        char why[128];
        if (made == 0 && root_problem(r.path[i], why, sizeof why) != NULL) {
            if (strcmp(r.named_by[i], "TRANSPORTER_UNPACK_DIR") == 0)
                die("refusing to unpack into %s (TRANSPORTER_UNPACK_DIR): %s: set it to a folder "
                    "of yours", r.path[i], why);
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "%s%s (%s)", used ? ", " : "", r.path[i],
                     why);
            continue;
        }
        int usable = made == 0 && access(r.path[i], W_OK | X_OK) == 0;
        if (usable && noexec(r.path[i])) {
            noexec_root = noexec_root ? noexec_root : r.path[i];
            continue;
        }
        join(folder, r.path[i], p.hash);
        if (!usable || unpack_into(&p, r.path[i], folder) != 0) {
            if (strcmp(r.named_by[i], "TRANSPORTER_UNPACK_DIR") == 0)
                die("cannot unpack into %s (TRANSPORTER_UNPACK_DIR): %s: set it to a writable "
                    "folder", r.path[i], strerror(errno));
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "%s%s (%s)", used ? ", " : "", r.path[i],
                     strerror(errno));
            continue;
        }
        refuse_found(r.path[i], folder);
        if (!is_complete(folder))
            die("%s exists but is incomplete: remove it, or set TRANSPORTER_UNPACK_DIR", folder);
        run(folder, r.path[i], argc, argv);
    }
    if (noexec_root != NULL)
        die("cannot run programs from %s (mounted noexec): set TRANSPORTER_UNPACK_DIR to a "
            "folder on a mount that allows exec", noexec_root);
    die("no writable folder to unpack into (tried %s): set TRANSPORTER_UNPACK_DIR", tried);
}
