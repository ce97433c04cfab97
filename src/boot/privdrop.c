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
