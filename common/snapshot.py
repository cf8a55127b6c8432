"""The proxy's state, read once per run: users, teams, and where a run needs them, key aliases
and the models the proxy serves. Planners work on this snapshot; no planner makes a request."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from common.addresses import key as email_key
from common.addresses import plain, search_terms
from common.lease import is_lease
from common.user_record import CLEAR
from litellm_client import Key, LiteLLMClient, Release, Team, User


@dataclass(frozen=True)
class Names:
    """The users a file names, for a snapshot of only those: its emails (as the proxy's email
    filter is asked for them) and its user_ids. refused_if_taken: emails of users to create that
    the proxy's create itself refuses if a user has them (see Names.of)."""

    search_terms: frozenset[str]
    user_ids: frozenset[str]
    refused_if_taken: frozenset[str] = frozenset()

    @classmethod
    def of(cls, cells: Iterable[tuple[str, str]], *, creating: bool = False) -> Names:
        """From (email, user_id) cells; a cell that names no user is left out. creating: the
        cells name users to create, and a row without user_id whose address is plain ASCII is one
        LiteLLM's create compares as the tools do (any case) and refuses if taken."""
        terms: set[str] = set()
        ids: set[str] = set()
        refused: set[str] = set()
        for email, user_id in cells:
            if user_id.strip():
                ids.add(user_id.strip())
            if creating and not user_id.strip() and plain(email):
                refused.add(email.strip().lower())
            else:
                terms |= search_terms(email)
        return cls(frozenset(terms), frozenset(ids), frozenset(refused))


@dataclass
class Snapshot:
    users: list[User]
    teams: list[Team]
    key_aliases: set[str] = field(default_factory=set)
    models: frozenset[str] | None = None  # None: not read (no models cell in the file)
    rules: Release | None = None  # what the proxy can and cannot change (None: anything, for planner tests)
    keys: dict[str, list[Key]] | None = None  # every key by owner; None: not listed
    complete: bool = True  # every user of the proxy (False: only those a file names, looked up)
    users_by_email: dict[str, list[User]] = field(init=False)
    users_by_id: dict[str, User] = field(init=False)
    teams_by_alias: dict[str, list[Team]] = field(init=False)
    teams_by_id: dict[str, Team] = field(init=False)
    members: dict[str, tuple[str, ...]] = field(init=False)  # user_id -> the teams whose roster has it

    def __post_init__(self) -> None:
        self.teams = [team for team in self.teams if not is_lease(team)]
        self.users_by_email = {}
        self.users_by_id = {user.user_id: user for user in self.users}
        for user in self.users:
            if user.email:
                self.users_by_email.setdefault(email_key(user.email), []).append(user)
        self.teams_by_alias = {}
        for team in self.teams:
            if team.alias:
                self.teams_by_alias.setdefault(team.alias, []).append(team)
        self.teams_by_id = {team.team_id: team for team in self.teams}
        members: dict[str, list[str]] = {}
        for team in self.teams:
            for user_id in team.member_ids:
                members.setdefault(user_id, []).append(team.team_id)
        self.members = {user_id: tuple(sorted(ids)) for user_id, ids in members.items()}

    @classmethod
    def load(
        cls,
        proxy: LiteLLMClient,
        *,
        named: Names | None = None,
        teams: bool = True,
        key_aliases: Sequence[str] = (),
        models: bool = False,
        keys_within: int = 0,
    ) -> Snapshot:
        """The users (all of them, or with `named` only those a file names, where looking them up
        takes fewer requests than listing every user), read beside the teams, whether these key
        aliases are taken, the models the proxy serves and, where listing them takes at most
        keys_within requests, every key."""
        with ThreadPoolExecutor(4) as pool:
            team_list = pool.submit(proxy.teams) if teams else None
            aliases = pool.submit(proxy.key_aliases, key_aliases) if key_aliases else None
            served = pool.submit(proxy.models) if models else None
            every_key = pool.submit(proxy.keys_by_owner, most_pages=keys_within) if keys_within else None
            if named is None:
                users, complete = list(proxy.users()), True
            else:
                users, complete = proxy.users_named(
                    sorted(named.search_terms), sorted(named.user_ids), refused_if_taken=sorted(named.refused_if_taken)
                )
            return cls(
                users,
                team_list.result() if team_list else [],
                aliases.result() if aliases else set(),
                served.result() if served else None,
                proxy.rules,
                keys=every_key.result() if every_key else None,
                complete=complete,
            )

    def with_teams(self, teams: list[Team]) -> Snapshot:
        """This snapshot with other teams (as a teams file's plan leaves them): what a users plan reads."""
        return replace(self, teams=teams)

    def keys_of(self, proxy: LiteLLMClient, users: Sequence[User]) -> dict[str, list[Key]]:
        """These users' keys, by user_id: from the listing of every key where the snapshot has it;
        for a snapshot of the few users a file names, each user's looked up."""
        if self.keys is not None:
            return {user.user_id: self.keys[user.user_id] for user in users if user.user_id in self.keys}
        return proxy.keys_of(users, keys_on_proxy=self.key_count if self.complete else math.inf)

    @staticmethod
    def knows(user: User, column: str) -> bool:
        """Whether the snapshot holds this user's value of a column (some listings leave one out)."""
        return user.knows(column)

    def add_details(self, proxy: LiteLLMClient, user_ids: Iterable[str]) -> None:
        """Read these users again where the listing left something out: one by one, or the whole
        user table at once where that is fewer requests."""
        wanted = [user_id for user_id in dict.fromkeys(user_ids) if user_id in self.users_by_id]
        wanted = [user_id for user_id in wanted if self.users_by_id[user_id].unlisted]
        if not wanted:
            return
        details = proxy.user_details(wanted, users_on_proxy=len(self.users) if self.complete else math.inf)
        self.users = [
            replace(user, max_parallel_requests=details[user.user_id].max_parallel_requests, unlisted=frozenset())
            if user.user_id in details
            else user
            for user in self.users
        ]
        self.__post_init__()

    def admin_of(self, user: User) -> tuple[str, ...]:
        """The teams in which the user is an admin (its role on their rosters)."""
        return tuple(team_id for team_id in self.teams_of(user) if user.user_id in self.teams_by_id[team_id].admin_ids)

    def teams_of(self, user: User) -> tuple[str, ...]:
        """The teams a user is in: those whose roster has it. The roster is what LiteLLM checks;
        the user's own list can disagree (older releases list teams they never put the user on,
        and lose roster entries under parallel writes where rosters are not locked), and a sync
        then puts the roster right."""
        return self.members.get(user.user_id, ())

    @property
    def key_count(self) -> int:
        """How many keys the users hold, as the listing counts them."""
        return sum(user.key_count for user in self.users)

    def managed(self) -> list[User]:
        """The users a sync may remove: an email and one of the four roles; never one whose email
        no file can name (blank, or only invisible characters)."""
        return [user for user in self.users if user.is_managed and email_key(user.email or "")]

    def team_named(self, name: str) -> Team | None:
        """The team a file names, by its alias if one team has it, or by its id; None if no team
        has that name; ValueError if the name could mean two teams."""
        by_alias = self.teams_by_alias.get(name, [])
        by_id = self.teams_by_id.get(name)
        if len(by_alias) > 1:
            ids = ", ".join(team.team_id for team in by_alias)
            raise ValueError(
                f"team alias '{name}' is ambiguous: {len(by_alias)} teams have it ({ids}); name the team by its id"
            )
        if by_alias and by_id and by_alias[0] is not by_id:
            raise ValueError(f"team '{name}' is the alias of one team and the id of another; rename one")
        return by_alias[0] if by_alias else by_id

    def find_team(self, name: str) -> Team:
        team = self.team_named(name)
        if team is None:
            raise ValueError(f"team '{name}' does not exist")
        return team

    def team_label(self, team_id: str) -> str:
        """The name files use for a team: its alias where the alias names it and only it, and
        reads back as itself; its id otherwise (no alias, a shared alias, a ';', outer spaces, `none`)."""
        team = self.teams_by_id.get(team_id)
        alias = team.alias if team else None
        if (
            alias
            and alias == alias.strip()
            and ";" not in alias
            and alias.lower() != CLEAR
            and len(self.teams_by_alias.get(alias, ())) == 1
            and (alias not in self.teams_by_id or alias == team_id)
        ):
            return alias
        return team_id

    def team_cell(self, team_ids: Iterable[str]) -> str:
        return ";".join(sorted(self.team_label(team_id) for team_id in team_ids))
