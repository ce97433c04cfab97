/* Dropping root after binding, in OpenBSD tftpd's order. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "boot/boot.h"

/*
 * getpwnam -> chroot -> chdir -> setgroups -> setresgid -> setresuid,
 * then prove the drop: setuid(0) must fail.  The caller exits on error;
 * a daemon that half-dropped must not go on.
 */
int boot_drop_privileges(const char *user, const char *chroot_dir,
			 struct kerr *e)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw)
		return kerr_set(e, errno ? -errno : -ENOENT, "user '%s': %s", user,
				errno ? strerror(errno) : "no such user");
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (uid == 0)
		return kerr_set(e, -EINVAL, "user '%s' is root", user);
	if (chroot_dir) {
		if (chroot(chroot_dir) < 0)
			return kerr_set(e, -errno, "chroot '%s': %s", chroot_dir,
					strerror(errno));
		if (chdir("/") < 0)
			return kerr_set(e, -errno, "chdir /: %s", strerror(errno));
	}
	if (setgroups(1, &gid) < 0)
		return kerr_set(e, -errno, "setgroups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) < 0)
		return kerr_set(e, -errno, "setresgid %u: %s", (unsigned)gid,
				strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		return kerr_set(e, -errno, "setresuid %u: %s", (unsigned)uid,
				strerror(errno));
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		return kerr_set(e, -EPERM, "privileges could be regained");
	return 0;
}

int boot_files_as_user(uid_t uid, gid_t gid, struct kerr *e)
{
	if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0)
		return kerr_set(e, -errno, "taking uid %u to open files: %s", (unsigned)uid,
				strerror(errno));
	return 0;
}

int boot_files_as_root(struct kerr *e)
{
	if (seteuid(0) < 0 || setegid(0) < 0)
		return kerr_set(e, -errno, "back to root: %s", strerror(errno));
	return 0;
}

int boot_user_groups(const char *user, gid_t gid, gid_t **out)
{
	int n = 0;
	getgrouplist(user, gid, NULL, &n);
	*out = xcalloc((size_t)n + 1, sizeof(gid_t));
	if (getgrouplist(user, gid, *out, &n) < 0)
		n = 0;
	return n;
}
