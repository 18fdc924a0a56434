#!/usr/bin/perl
# scram-verifier.pl: prints the SCRAM-SHA-256 verifier PostgreSQL stores for a
# password (the form `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'` accepts),
# so that the password itself never reaches the server, its log or a command
# line. The password is the first line of standard input.
#
#   scram-verifier.pl [SALT_BASE64 [ITERATIONS]] < password-file
#
# With a salt (and iteration count) it recomputes a verifier, to compare with
# the stored one; without, the salt is 16 bytes from /dev/urandom and the
# iteration count 4096 (PostgreSQL's default). Only Perl core modules: Perl
# is already there, as postgresql-common is written in it.
# RFC 5802 / RFC 7677; PostgreSQL's format: src/common/scram-common.c.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(encode_base64 decode_base64);

my ($salt_b64, $iterations) = @ARGV;
$iterations = 4096 unless defined $iterations;
die "scram-verifier.pl: bad iteration count\n" unless $iterations =~ /^[1-9][0-9]{0,6}$/;

my $password = <STDIN>;
die "scram-verifier.pl: no password on standard input\n" unless defined $password;
$password =~ s/\r?\n\z//;
die "scram-verifier.pl: empty password\n" if $password eq '';
# PostgreSQL runs SASLprep on the password; for printable ASCII that changes
# nothing. Other passwords are refused, so the verifier is always the one the
# server would compute.
die "scram-verifier.pl: the password must be printable ASCII\n" unless $password =~ /^[\x20-\x7e]+\z/;

my $salt;
if (defined $salt_b64) {
    $salt = decode_base64($salt_b64);
    die "scram-verifier.pl: bad salt\n" if length($salt) == 0;
} else {
    open(my $rnd, '<:raw', '/dev/urandom') or die "scram-verifier.pl: /dev/urandom: $!\n";
    read($rnd, $salt, 16) == 16 or die "scram-verifier.pl: short read from /dev/urandom\n";
    close($rnd);
}

# PBKDF2-HMAC-SHA-256, one 32-byte block: Hi() of RFC 5802.
my $u = hmac_sha256($salt . pack('N', 1), $password);
my $salted = $u;
for (my $i = 1; $i < $iterations; $i++) {
    $u = hmac_sha256($u, $password);
    $salted ^= $u;
}
my $client_key = hmac_sha256('Client Key', $salted);
my $stored_key = sha256($client_key);
my $server_key = hmac_sha256('Server Key', $salted);

my $b64 = sub { my $s = encode_base64($_[0], ''); return $s; };
print 'SCRAM-SHA-256$', $iterations, ':', $b64->($salt), '$', $b64->($stored_key), ':', $b64->($server_key), "\n";
