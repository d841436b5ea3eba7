"""`bosh-openstack-cpi validate ...` and `bosh-openstack-cpi orphans ...` (cli.py hands a
first argument that names a tool, and is not a file, over to `main`)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable

from bosh_openstack_cpi.operator.session import Printer, open_call, set_up_logging
from bosh_openstack_cpi.protocol.errors import CpiError

TOOLS = ("validate", "orphans")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bosh-openstack-cpi",
        description="Operator tools of the OpenStack CPI (docs/operator-tools.md). The CPI "
        "itself runs as `bosh-openstack-cpi <cpi.json> [<cacert.pem>]`.",
    )
    tools = top.add_subparsers(dest="tool", required=True)
    validate = tools.add_parser("validate", help="check a cloud before the first deploy")
    _common(validate)
    validate.add_argument(
        "--cloud-config", metavar="FILE", help="the BOSH cloud config (YAML/JSON)"
    )
    validate.add_argument(
        "--report",
        metavar="FILE",
        action="append",
        default=[],
        help="write a report: FILE.md, FILE.xml (JUnit) or FILE.html (repeatable)",
    )
    validate.add_argument(
        "--image",
        metavar="IMAGE_ID",
        help="a Glance image for the end-to-end run, used as a light stemcell (default: "
        "upload a 1 MiB image it builds as a heavy stemcell)",
    )
    validate.add_argument(
        "--no-end-to-end",
        action="store_true",
        help="only the checks that create nothing (a few seconds)",
    )
    validate.add_argument(
        "--director-uuid",
        metavar="ID",
        help="director UUID that marks what the end-to-end run creates "
        "(default: validate-<random UUID>)",
    )
    orphans = tools.add_parser("orphans", help="find (and delete) what a director left behind")
    _common(orphans)
    orphans.add_argument(
        "--director-uuid",
        metavar="ID",
        help="the director's UUID (`bosh env --json`: uuid); without it, the director "
        "UUIDs found on the project's servers, volumes and snapshots are listed",
    )
    orphans.add_argument(
        "--known",
        metavar="FILE",
        action="append",
        default=[],
        help="output of `bosh vms --json`, `bosh disks --orphaned --json` or "
        "`bosh stemcells --json` (repeatable): the cids the director knows",
    )
    orphans.add_argument(
        "--network",
        metavar="NET_ID",
        action="append",
        default=[],
        help="also list ports bound to nothing on this network (reference CPIs leave those "
        "unmarked; repeatable)",
    )
    orphans.add_argument("--delete", action="store_true", help="delete what was found")
    orphans.add_argument("--yes", action="store_true", help="do not ask before deleting")
    orphans.add_argument(
        "--none-known",
        action="store_true",
        help="with --delete and no --known: the director knows nothing (it is gone)",
    )
    return top


def _common(tool: argparse.ArgumentParser) -> None:
    tool.add_argument("cpi_json", metavar="cpi.json", help="the CPI's configuration")
    tool.add_argument("--ca-cert", metavar="PEM", help="the job's cacert.pem, if any")
    tool.add_argument("-v", "--verbose", action="store_true", help="debug log on stderr")


def main(argv: list[str]) -> int:
    arguments = parser().parse_args(argv)
    set_up_logging(arguments.verbose)
    printer = Printer(sys.stdout)
    tool: Callable[[argparse.Namespace, Printer], int] = (
        run_validate if arguments.tool == "validate" else run_orphans
    )
    try:
        return tool(arguments, printer)
    except KeyboardInterrupt:
        printer.line("interrupted")
        return 130
    except _usage_errors() as error:  # a file the tool cannot read: nothing was done
        printer.line(f"error: {error}")
        return 2
    except CpiError as error:  # the CPI's own errors (config, cloud): already explained
        printer.line(f"error: {error}")
        return 1


def _usage_errors() -> tuple[type[Exception], ...]:
    from bosh_openstack_cpi.operator.cloud_config import CloudConfigError
    from bosh_openstack_cpi.operator.known import KnownFileError
    from bosh_openstack_cpi.operator.reports import ReportFormatError

    return (CloudConfigError, KnownFileError, ReportFormatError, OSError)


def run_validate(arguments: argparse.Namespace, printer: Printer) -> int:
    from bosh_openstack_cpi.operator import cloud_config, reports
    from bosh_openstack_cpi.operator.checks import Runner, warning
    from bosh_openstack_cpi.operator.end_to_end import CpiExecutable, EndToEnd
    from bosh_openstack_cpi.operator.inventory import by_kind, marked
    from bosh_openstack_cpi.operator.validate import Validation

    config = cloud_config.load(arguments.cloud_config) if arguments.cloud_config else None
    director_uuid = arguments.director_uuid or f"validate-{uuid.uuid4()}"
    runner = Runner(printer)
    printer.line(f"Validating {arguments.cpi_json} (director UUID {director_uuid})")
    with open_call(arguments.cpi_json, arguments.ca_cert, director_uuid, fresh_token=True) as call:
        validation = Validation(call, config, runner)
        if validation.run_static_checks():
            if arguments.no_end_to_end:
                pass
            elif config is None:
                runner.run(
                    "end-to-end",
                    "CPI lifecycle",
                    lambda: warning(
                        "skipped: it needs the cloud config (its networks and VM types)",
                        "pass --cloud-config to run create_vm, create_disk, attach, snapshot",
                    ),
                )
            else:
                cpi = CpiExecutable(arguments.cpi_json, arguments.ca_cert, director_uuid)
                EndToEnd(
                    cpi,
                    config,
                    runner,
                    arguments.image,
                    lambda: by_kind(marked(call.cloud, director_uuid)),
                ).run()
    printer.line(reports.summary(runner.results))
    for path in arguments.report:
        reports.write(path, runner.results, "bosh-openstack-cpi validate")
        printer.line(f"report: {path}")
    return 0 if runner.all_passed else 1


def run_orphans(arguments: argparse.Namespace, printer: Printer) -> int:
    from bosh_openstack_cpi.operator import orphans
    from bosh_openstack_cpi.operator.known import read_known

    if arguments.delete and not arguments.known and not arguments.none_known:
        printer.line(
            "--delete needs the director's lists (--known FILE ...), or --none-known when "
            "the director is gone: otherwise everything it uses would be deleted"
        )
        return 2
    known = read_known(arguments.known)
    director = arguments.director_uuid
    if not director:
        return _list_directors(arguments, printer)
    with open_call(arguments.cpi_json, arguments.ca_cert, director, fresh_token=False) as call:
        found = orphans.find(call.cloud, director, known, arguments.network)
        printer.line(
            f"{len(found)} resource(s) of director {director} that it does not know "
            f"({len(known)} known cids):"
        )
        if found:
            orphans.show(printer, found)
        if not arguments.delete or not found:
            return 0
        if not arguments.yes and not _confirmed(len(found)):
            printer.line("nothing deleted")
            return 1
        problems = orphans.delete(call.cloud, found, printer)
    if problems:
        printer.line(f"{len(problems)} could not be deleted:")
        for problem in problems:
            printer.line(f"  {problem}")
        return 1
    printer.line(f"deleted {len(found)} resource(s)")
    return 0


def _list_directors(arguments: argparse.Namespace, printer: Printer) -> int:
    from bosh_openstack_cpi.operator.inventory import director_uuids

    with open_call(arguments.cpi_json, arguments.ca_cert, "-", fresh_token=False) as call:
        found = director_uuids(call.cloud)
    printer.line("director UUIDs on this project's servers, volumes and snapshots:")
    for uuid_found, count in sorted(found.items(), key=lambda item: -item[1]):
        printer.line(f"  {uuid_found}  ({count})")
    printer.line("pass one as --director-uuid")
    return 2


def _confirmed(count: int) -> bool:
    sys.stdout.write(f"Delete these {count} resources? Type 'yes' to go on: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip() == "yes"
