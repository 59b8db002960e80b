//! The Vagrant + Ansible lab in `lab/vagrant/` cannot boot here (no hypervisor), so this
//! tests every part that can run without VMs:
//!
//! * the playbooks pass `ansible-playbook --syntax-check` and resolve all their roles;
//! * the Vagrantfile is valid Ruby, and evaluated against a recording stand-in for Vagrant's
//!   API it defines the seed's six machines with the seed's addresses;
//! * the inventory, the variables and the seed topology agree;
//! * rt-01's gobgpd configuration, rendered from its Jinja2 template by Ansible's own template
//!   module, passes `gobgpd --dry-run` and really runs: in fresh network namespaces gobgpd
//!   starts with it, lists the configured neighbors, and two stand-in nodes (gobgpd, AS 64522)
//!   show that its policies accept and pass on exactly the routes the lab needs.
//!
//! A step skips, saying why, only when its tool is not installed (ansible-core: `pip install
//! ansible-core` or `apt-get install ansible`; ruby: `apt-get install ruby`; gobgpd/gobgp:
//! `apt-get install gobgpd`) or, for the namespaces, when not running as root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrolb_netns::{
    Family, GobgpConfig, GobgpNeighbor, GobgpPeer, Gobgpd, Lab, Netns, RibRoute,
    parse_gobgp_neighbors, parse_gobgp_rib, wait_for,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

fn lab_dir() -> PathBuf {
    repo_root().join("lab/vagrant")
}

/// Absolute path of `program` on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The tools a test needs, or a printed SKIP line naming the missing one.
fn require(test: &str, tools: &[(&str, &str)]) -> bool {
    for (tool, install) in tools {
        if which(tool).is_none() {
            eprintln!("SKIP {test}: `{tool}` is not installed ({install})");
            return false;
        }
    }
    true
}

const ANSIBLE: (&str, &str) = (
    "ansible-playbook",
    "pip install ansible-core, or apt-get install ansible",
);
const ANSIBLE_ADHOC: (&str, &str) = (
    "ansible",
    "pip install ansible-core, or apt-get install ansible",
);
const RUBY: (&str, &str) = ("ruby", "apt-get install ruby");
const GOBGPD: (&str, &str) = ("gobgpd", "apt-get install gobgpd");
const GOBGP: (&str, &str) = ("gobgp", "apt-get install gobgpd");
const IP: (&str, &str) = ("ip", "apt-get install iproute2");
const PYTHON: (&str, &str) = ("python3", "apt-get install python3");

/// Run to completion; error with stdout+stderr unless it succeeded.
fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn ansible_env(cmd: &mut Command) -> &mut Command {
    cmd.current_dir(lab_dir())
        .env("ANSIBLE_CONFIG", lab_dir().join("ansible.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False")
}

fn lab_vars() -> Result<Value> {
    let text = std::fs::read_to_string(lab_dir().join("group_vars/all.yml"))?;
    serde_saphyr::from_str(&text).context("group_vars/all.yml")
}

/// The seed's machines: name -> (group, {segment: address}).
fn seed_topology() -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let m = |name: &str, group: &str, ifs: &[(&str, &str)]| {
        (
            name.to_string(),
            (
                group.to_string(),
                ifs.iter()
                    .map(|(n, ip)| (n.to_string(), ip.to_string()))
                    .collect(),
            ),
        )
    };
    BTreeMap::from([
        m(
            "rt-01",
            "router",
            &[("client", "172.17.1.1"), ("cluster", "172.17.0.1")],
        ),
        m("client-01", "client", &[("client", "172.17.1.10")]),
        m("k8s-master-01", "k8s_master", &[("cluster", "172.17.0.10")]),
        m("k8s-node-01", "k8s_nodes", &[("cluster", "172.17.0.21")]),
        m("k8s-node-02", "k8s_nodes", &[("cluster", "172.17.0.22")]),
        m("k8s-node-03", "k8s_nodes", &[("cluster", "172.17.0.23")]),
    ])
}

// ---------------------------------------------------------------------------------------
// Ansible playbooks, inventory, variables
// ---------------------------------------------------------------------------------------

#[test]
fn playbooks_pass_ansible_syntax_check() -> Result<()> {
    if !require("playbooks_pass_ansible_syntax_check", &[ANSIBLE]) {
        return Ok(());
    }
    run_ok(ansible_env(&mut Command::new("ansible-playbook")).args([
        "--syntax-check",
        "-i",
        "inventory.ini",
        "site.yml",
        "verify.yml",
    ]))?;

    // --list-tasks resolves every role and task file per play; the steps the seed did by
    // hand must be among them.
    let out = run_ok(ansible_env(&mut Command::new("ansible-playbook")).args([
        "--list-tasks",
        "-i",
        "inventory.ini",
        "site.yml",
    ]))?;
    let listing = String::from_utf8(out.stdout)?;
    for task in [
        "kubeadm init",
        "Join command for the workers (kubeadm token create --print-join-command)",
        "kubeadm join",
        "Label worker nodes like the seed lab",
        "gobgpd configuration (checked with gobgpd --dry-run before it is installed)",
        "FRR running (zebra)",
        "CNI config (bridge cni0 with this node's pod CIDR)",
        "Apply manifests/pod-network (kustomize overlay of manifests/)",
    ] {
        assert!(
            listing.contains(task),
            "task {task:?} missing from:\n{listing}"
        );
    }
    // Plays are listed as "play #N (HOSTS): NAME".
    for hosts in ["all", "router", "client", "k8s", "k8s_master", "k8s_nodes"] {
        let play = format!("({hosts}):");
        assert!(
            listing.contains(&play),
            "no play for hosts {hosts}:\n{listing}"
        );
    }
    Ok(())
}

/// The syntax check is not a rubber stamp: a task with two actions is refused.
#[test]
fn ansible_syntax_check_rejects_a_broken_playbook() -> Result<()> {
    if !require("ansible_syntax_check_rejects_a_broken_playbook", &[ANSIBLE]) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "- hosts: all\n  tasks:\n    - name: two actions\n      ansible.builtin.command: \"true\"\n      ansible.builtin.shell: \"true\"\n",
    )?;
    let out = ansible_env(&mut Command::new("ansible-playbook"))
        .args(["--syntax-check", "-i", "inventory.ini"])
        .arg(&bad)
        .output()?;
    assert!(
        !out.status.success(),
        "syntax check accepted a task with two actions"
    );
    Ok(())
}

/// group_vars/all.yml (read by both Ansible and the Vagrantfile) is the seed's topology,
/// and inventory.ini groups the same machines the same way.
#[test]
fn variables_and_inventory_match_the_seed_topology() -> Result<()> {
    let vars = lab_vars()?;
    let machines = vars["lab_machines"].as_array().context("lab_machines")?;
    let mut found = BTreeMap::new();
    for m in machines {
        let name = m["name"].as_str().context("name")?.to_string();
        let group = m["group"].as_str().context("group")?.to_string();
        let ifs = m["interfaces"]
            .as_array()
            .context("interfaces")?
            .iter()
            .map(|i| {
                Ok((
                    i["network"].as_str().context("network")?.to_string(),
                    i["ip"].as_str().context("ip")?.to_string(),
                ))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        found.insert(name, (group, ifs));
    }
    assert_eq!(found, seed_topology());
    assert_eq!(vars["router_asn"], 64512);
    assert_eq!(vars["cluster_asn"], 64522);
    assert_eq!(vars["lb_pool"], "172.17.254.0/24");
    assert_eq!(vars["pod_network_cidr"], "10.244.0.0/16");
    assert_eq!(vars["lab_networks"]["client"]["cidr"], "172.17.1.0/24");
    assert_eq!(vars["lab_networks"]["cluster"]["cidr"], "172.17.0.0/24");

    // inventory.ini: [group] headers and host lines.
    let ini = std::fs::read_to_string(lab_dir().join("inventory.ini"))?;
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in ini
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(group.to_string());
            groups.entry(group.to_string()).or_default();
        } else {
            let group = current.clone().context("host line before any [group]")?;
            groups.entry(group).or_default().insert(line.to_string());
        }
    }
    for (name, (group, _)) in seed_topology() {
        assert!(
            groups.get(&group).is_some_and(|g| g.contains(&name)),
            "{name} not in [{group}]"
        );
    }
    assert_eq!(
        groups.get("k8s:children"),
        Some(&BTreeSet::from([
            "k8s_master".to_string(),
            "k8s_nodes".to_string()
        ]))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Vagrantfile
// ---------------------------------------------------------------------------------------

/// Stands in for Vagrant's API while the Vagrantfile is evaluated: `x.y = v` records an
/// attribute, `x.y` returns a nested recorder, `x.y(args) { |r| }` records a call and runs
/// the block on a fresh recorder. Prints everything as JSON.
const VAGRANT_RECORDER: &str = r#"
require "json"

class Recorder
  def initialize
    @attrs = {}
    @children = {}
    @calls = []
  end

  def method_missing(name, *args, **kwargs, &block)
    n = name.to_s
    if n.end_with?("=") && args.length == 1
      @attrs[n.chomp("=")] = args[0]
    elsif args.empty? && kwargs.empty? && block.nil?
      @children[n] ||= Recorder.new
    else
      call = { "name" => n, "args" => args, "kwargs" => kwargs.transform_keys(&:to_s) }
      if block
        inner = Recorder.new
        block.call(inner)
        call["block"] = inner.to_h
      end
      @calls << call
      nil
    end
  end

  def respond_to_missing?(_name, _include_private = false) = true

  def to_h
    { "attrs" => @attrs, "children" => @children.transform_values(&:to_h), "calls" => @calls }
  end
end

module Vagrant
  @configs = []
  class << self
    attr_reader :configs
  end

  def self.configure(version)
    root = Recorder.new
    yield root
    @configs << { "version" => version, "config" => root.to_h }
  end
end

path = ARGV.fetch(0)
Dir.chdir(File.dirname(path)) { load File.basename(path) }
puts JSON.generate(Vagrant.configs)
"#;

fn calls<'a>(recorder: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    recorder["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |c| c["name"] == name)
}

#[test]
fn vagrantfile_defines_the_seed_machines() -> Result<()> {
    if !require("vagrantfile_defines_the_seed_machines", &[RUBY]) {
        return Ok(());
    }
    let vagrantfile = lab_dir().join("Vagrantfile");
    run_ok(Command::new("ruby").arg("-c").arg(&vagrantfile))?;

    let dir = tempfile::tempdir()?;
    let recorder = dir.path().join("recorder.rb");
    std::fs::write(&recorder, VAGRANT_RECORDER)?;
    let out = run_ok(Command::new("ruby").arg(&recorder).arg(&vagrantfile))?;
    let configs: Value = serde_json::from_slice(&out.stdout)?;
    let configs = configs.as_array().context("configs")?;
    assert_eq!(configs.len(), 1, "one Vagrant.configure block");
    assert_eq!(configs[0]["version"], "2");
    let vm = &configs[0]["config"]["children"]["vm"];
    assert!(
        vm["attrs"]["box"]
            .as_str()
            .is_some_and(|b| b.contains("bookworm")),
        "box {}",
        vm["attrs"]["box"]
    );

    let vars = lab_vars()?;
    let intnet = |segment: &str| vars["lab_networks"][segment]["vbox_intnet"].clone();
    let defines: Vec<&Value> = calls(vm, "define").collect();
    let mut found = BTreeMap::new();
    for define in &defines {
        let name = define["args"][0]
            .as_str()
            .context("define name")?
            .to_string();
        let node_vm = &define["block"]["children"]["vm"];
        assert_eq!(node_vm["attrs"]["hostname"], name.as_str());
        let mut ifs = BTreeMap::new();
        for network in calls(node_vm, "network") {
            assert_eq!(network["args"][0], "private_network", "{name}");
            let ip = network["kwargs"]["ip"].as_str().context("ip")?.to_string();
            let segment = if ip.starts_with("172.17.1.") {
                "client"
            } else {
                "cluster"
            };
            assert_eq!(
                network["kwargs"]["virtualbox__intnet"],
                intnet(segment),
                "{name} {ip}"
            );
            assert_eq!(network["kwargs"]["netmask"], "255.255.255.0");
            ifs.insert(segment.to_string(), ip);
        }
        let provider = calls(node_vm, "provider").find(|p| p["args"][0] == "virtualbox");
        let memory = provider
            .and_then(|p| p["block"]["attrs"]["memory"].as_u64())
            .unwrap_or(0);
        assert!(memory >= 512, "{name}: memory {memory}");
        found.insert(name, ifs);
    }
    let expected: BTreeMap<String, BTreeMap<String, String>> = seed_topology()
        .into_iter()
        .map(|(n, (_, ifs))| (n, ifs))
        .collect();
    assert_eq!(found, expected);

    // Ansible runs once, from the last machine, over all of them, with the groups the
    // playbooks use.
    let provisioners: Vec<(usize, &Value)> = defines
        .iter()
        .enumerate()
        .flat_map(|(i, d)| calls(&d["block"]["children"]["vm"], "provision").map(move |p| (i, p)))
        .collect();
    assert_eq!(provisioners.len(), 1, "exactly one provisioner");
    let (index, ansible) = provisioners[0];
    assert_eq!(
        index,
        defines.len() - 1,
        "the provisioner runs after every machine is up"
    );
    assert_eq!(ansible["args"][0], "ansible");
    let attrs = &ansible["block"]["attrs"];
    assert_eq!(attrs["playbook"], "site.yml");
    assert_eq!(attrs["limit"], "all");
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, (group, _)) in seed_topology() {
        groups.entry(group).or_default().insert(name);
    }
    for (group, members) in &groups {
        let got: BTreeSet<String> = attrs["groups"][group]
            .as_array()
            .with_context(|| format!("ansible group {group}"))?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        assert_eq!(&got, members, "group {group}");
    }
    assert!(
        lab_dir()
            .join(attrs["playbook"].as_str().unwrap_or_default())
            .is_file()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rt-01's gobgpd configuration
// ---------------------------------------------------------------------------------------

/// Render the role template `template` (relative to lab/vagrant/roles) with Ansible's
/// template module and the lab's variables (plus `extra` overrides) into `dest`.
fn render_template(template: &str, dest: &Path, extra: &[(&str, &str)]) -> Result<String> {
    let lab = lab_dir();
    let python = which("python3").context("python3")?;
    let mut cmd = Command::new("ansible");
    ansible_env(&mut cmd).args([
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-m",
        "ansible.builtin.template",
    ]);
    cmd.arg("-a").arg(format!(
        "src={} dest={} mode=0644",
        lab.join("roles").join(template).display(),
        dest.display()
    ));
    cmd.arg("-e")
        .arg(format!("@{}", lab.join("group_vars/all.yml").display()));
    cmd.arg("-e")
        .arg(format!("ansible_python_interpreter={}", python.display()));
    for (k, v) in extra {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    run_ok(&mut cmd)?;
    Ok(std::fs::read_to_string(dest)?)
}

/// rt-01's gobgpd configuration, rendered from its template.
fn render_gobgpd_conf(dest: &Path, extra: &[(&str, &str)]) -> Result<String> {
    render_template("router/templates/gobgpd.conf.j2", dest, extra)
}

/// The other templates render to what the machines need: the CNI config is valid JSON
/// with the node's pod CIDR, the client's route unit routes the lab prefixes via rt-01.
#[test]
fn node_and_client_templates_render() -> Result<()> {
    if !require("node_and_client_templates_render", &[ANSIBLE_ADHOC, PYTHON]) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let cni = render_template(
        "cni_bridge/templates/10-ferrolb-bridge.conflist.j2",
        &dir.path().join("cni.conflist"),
        &[("node_pod_cidr", "10.244.3.0/24")],
    )?;
    let cni: Value = serde_json::from_str(&cni).context("CNI config is not JSON")?;
    let bridge = &cni["plugins"][0];
    assert_eq!(bridge["type"], "bridge");
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipam"]["type"], "host-local");
    assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");

    let unit = render_template(
        "client/templates/lab-routes.service.j2",
        &dir.path().join("lab-routes.service"),
        &[],
    )?;
    for prefix in ["172.17.0.0/24", "172.17.254.0/24", "10.244.0.0/16"] {
        let line = format!("ExecStart=/usr/sbin/ip route replace {prefix} via 172.17.1.1");
        assert!(unit.lines().any(|l| l == line), "{line:?} missing:\n{unit}");
    }
    Ok(())
}

/// roles/common/tasks/facts.yml, run for all six lab hosts (locally, no VM): each gets the
/// address the other roles use as `lab_ip` (kubelet --node-ip, kubeadm advertise address).
#[test]
fn lab_facts_resolve_each_machines_address() -> Result<()> {
    if !require(
        "lab_facts_resolve_each_machines_address",
        &[ANSIBLE, PYTHON],
    ) {
        return Ok(());
    }
    let python = which("python3").context("python3")?;
    let dir = tempfile::tempdir()?;
    let mut inventory = String::from("[lab]\n");
    for (name, (_, ifs)) in seed_topology() {
        let expected = ifs
            .get("cluster")
            .or(ifs.get("client"))
            .context("address")?;
        inventory.push_str(&format!(
            "{name} expected_ip={expected} ansible_connection=local ansible_python_interpreter={}\n",
            python.display()
        ));
    }
    std::fs::write(dir.path().join("inventory.ini"), inventory)?;
    std::fs::write(
        dir.path().join("facts.yml"),
        format!(
            "- hosts: lab\n  gather_facts: false\n  tasks:\n    - ansible.builtin.import_tasks: {}\n    \
             - ansible.builtin.assert:\n        that: lab_ip == expected_ip\n        \
             fail_msg: \"{{{{ inventory_hostname }}}}: lab_ip {{{{ lab_ip }}}} != {{{{ expected_ip }}}}\"\n",
            lab_dir().join("roles/common/tasks/facts.yml").display()
        ),
    )?;
    let out = run_ok(
        ansible_env(&mut Command::new("ansible-playbook"))
            .arg("-i")
            .arg(dir.path().join("inventory.ini"))
            .arg("-e")
            .arg(format!(
                "@{}",
                lab_dir().join("group_vars/all.yml").display()
            ))
            .arg(dir.path().join("facts.yml")),
    )?;
    let recap = String::from_utf8(out.stdout)?;
    for name in seed_topology().keys() {
        assert!(
            recap.lines().any(|l| l.starts_with(name.as_str())
                && l.contains("failed=0")
                && l.contains("ok=3")),
            "{name} did not run all three tasks:\n{recap}"
        );
    }
    Ok(())
}

fn gobgpd_dry_run(conf: &Path) -> Result<Output> {
    Ok(Command::new("gobgpd")
        .arg("--dry-run")
        .arg("--config-file")
        .arg(conf)
        .output()?)
}

#[test]
fn gobgpd_config_renders_and_passes_dry_run() -> Result<()> {
    if !require(
        "gobgpd_config_renders_and_passes_dry_run",
        &[ANSIBLE_ADHOC, PYTHON, GOBGPD],
    ) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("gobgpd.conf");
    let text = render_gobgpd_conf(&conf, &[])?;

    // As deployed: zebra on, with the ZAPI version and software name FRR 8.4 needs.
    assert!(text.contains("[zebra.config]\n  enabled = true"), "{text}");
    assert!(text.contains("url = \"unix:/var/run/frr/zserv.api\""));
    assert!(text.contains("version = 6") && text.contains("software-name = \"frr8.4\""));
    assert!(text.contains("as = 64512") && text.contains("router-id = \"172.17.0.1\""));
    let neighbors = text.matches("[[neighbors]]").count();
    assert_eq!(neighbors, 4, "master + three workers");

    // gobgpd's own parser rejects unknown keys and bad values: the whole file must pass.
    let out = gobgpd_dry_run(&conf)?;
    assert!(
        out.status.success(),
        "gobgpd --dry-run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // And the dry run does catch mistakes (so passing means something).
    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, text.replacen("software-name", "sofware-name", 1))?;
    assert!(
        !gobgpd_dry_run(&broken)?.status.success(),
        "dry run accepted a misspelled key"
    );
    Ok(())
}

/// Log lines quoted when the router misbehaves.
const LOG_LINES: usize = 200;

/// `gobgp ARGS -j` inside `ns`. rt-01 runs from the rendered file with the API address it
/// is deployed with (`--api-hosts=127.0.0.1:50051`), so it is not a harness [`Gobgpd`]
/// (which writes its own config and API socket) and its CLI must run in its namespace.
fn gobgp_json(ns: &Netns, args: &[&str]) -> ferrolb_netns::Result<String> {
    let args: Vec<&str> = args.iter().copied().chain(["-j"]).collect();
    ns.run("gobgp", &args)
}

/// rt-01's neighbours by address.
fn neighbor_states(rt: &Netns) -> ferrolb_netns::Result<BTreeMap<String, GobgpPeer>> {
    Ok(parse_gobgp_neighbors(&gobgp_json(rt, &["neighbor"])?)?
        .into_iter()
        .map(|peer| (peer.address.to_string(), peer))
        .collect())
}

/// One path of a RIB entry: next hop and AS path.
type PathInfo = (String, Vec<u32>);

/// prefix -> its paths.
fn by_prefix(routes: Vec<RibRoute>) -> BTreeMap<String, Vec<PathInfo>> {
    routes
        .into_iter()
        .map(|route| {
            let paths = route
                .paths
                .into_iter()
                .map(|p| {
                    let nexthop = p.next_hops.first().map(ToString::to_string);
                    (nexthop.unwrap_or_default(), p.as_path)
                })
                .collect();
            (route.prefix.to_string(), paths)
        })
        .collect()
}

/// rt-01's global IPv4 RIB.
fn rt_rib(rt: &Netns) -> ferrolb_netns::Result<BTreeMap<String, Vec<PathInfo>>> {
    Ok(by_prefix(parse_gobgp_rib(&gobgp_json(
        rt,
        &["global", "rib", "-a", "ipv4"],
    )?)?))
}

/// A stand-in Kubernetes node: AS 64522 like ferrolb's speakers, connecting to rt-01.
fn start_node(ns: &Netns, ip: &str) -> Result<Gobgpd> {
    let mut router = GobgpNeighbor::new("172.17.0.1".parse()?, 64512);
    router.passive = false;
    router.families = vec![Family::V4];
    let cfg = GobgpConfig::new(64522, ip.parse()?).neighbor(router);
    Ok(Gobgpd::start(ns, &cfg)?)
}

/// Runs the rendered rt-01 configuration (zebra off: no zebra beside it here, see README)
/// in a namespace with a bridge for the cluster segment, plus two stand-in nodes
/// (k8s-node-01/02 addresses, AS 64522) running gobgpd.
#[test]
fn gobgpd_config_runs_and_its_policies_route_the_lab() -> Result<()> {
    let test = "gobgpd_config_runs_and_its_policies_route_the_lab";
    if !require(test, &[ANSIBLE_ADHOC, PYTHON, GOBGPD, GOBGP, IP]) {
        return Ok(());
    }
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("SKIP {test}: {skip}");
        return Ok(());
    }
    // The lab owns namespaces, daemons and its work directory, and removes them on drop,
    // also when an assertion panics.
    let lab = Lab::with_prefix("flvg")?;
    let rt_conf = lab.dir().join("rt-01.conf");
    render_gobgpd_conf(&rt_conf, &[("gobgp_zebra_enabled", "false")])?;

    // Topology: rt-01's namespace holds the cluster-segment bridge; each node is a veth
    // into it. Interfaces are created directly inside the namespaces, so nothing is left in
    // the root namespace if the test fails half-way.
    let rt = lab.netns("rt")?;
    let node1 = lab.netns("n1")?;
    let node2 = lab.netns("n2")?;
    let br = lab.bridge(&rt)?;
    rt.add_addr(&br, "172.17.0.1/24".parse()?)?;
    for (node, addr) in [(&node1, "172.17.0.21/24"), (&node2, "172.17.0.22/24")] {
        let veth = lab.connect(node, &rt, &br)?;
        node.add_addr(&veth.a, addr.parse()?)?;
    }

    let rt_daemon = rt.spawn_logged(
        "gobgpd",
        &[
            "--config-file",
            &rt_conf.to_string_lossy(),
            "--log-plain",
            "--pprof-disable",
            "--api-hosts=127.0.0.1:50051",
        ],
        &lab.dir().join("rt-01.log"),
    )?;

    // 1. It starts and lists every configured peer (control plane + three workers).
    // gobgpd answers its API before it has loaded the config file's neighbors, so an
    // empty or partial list means "not yet", not a wrong configuration.
    let expected: BTreeSet<String> = ["172.17.0.10", "172.17.0.21", "172.17.0.22", "172.17.0.23"]
        .map(String::from)
        .into();
    let states = wait_for("rt-01 lists its neighbors", Duration::from_secs(30), || {
        let states = neighbor_states(&rt)?;
        Ok((states.len() >= expected.len()).then_some(states))
    })
    .with_context(|| {
        format!(
            "gobgpd did not come up; log:\n{}",
            rt_daemon.log_tail(LOG_LINES)
        )
    })?;
    assert_eq!(states.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let global: Value = serde_json::from_str(&gobgp_json(&rt, &["global"])?)?;
    assert_eq!(global["asn"], 64512);
    assert_eq!(global["router_id"], "172.17.0.1");

    // 2. Two stand-in nodes peer with it, AS 64522 like ferrolb's speakers.
    let n1 = start_node(&node1, "172.17.0.21")?;
    let n2 = start_node(&node2, "172.17.0.22")?;
    wait_for("sessions with both nodes", Duration::from_secs(30), || {
        let s = neighbor_states(&rt)?;
        Ok((s.get("172.17.0.21").is_some_and(GobgpPeer::is_established)
            && s.get("172.17.0.22").is_some_and(GobgpPeer::is_established))
        .then_some(()))
    })
    .with_context(|| {
        format!(
            "sessions not established; rt-01 log:\n{}",
            rt_daemon.log_tail(LOG_LINES)
        )
    })?;

    // node-01 announces a Service /32, its pod CIDR, and two things the router must refuse.
    for prefix in [
        "172.17.254.1/32",
        "10.244.1.0/24",
        "192.0.2.0/24",
        "172.17.254.0/24",
    ] {
        n1.cli(&["global", "rib", "add", "-a", "ipv4", prefix])?;
    }
    // node-02 announces the same Service /32 (ECMP) and its own pod CIDR.
    for prefix in ["172.17.254.1/32", "10.244.2.0/24"] {
        n2.cli(&["global", "rib", "add", "-a", "ipv4", prefix])?;
    }

    // 3. rt-01 accepts the /32 from both nodes and the pod CIDRs, nothing else.
    let rt_rib = wait_for(
        "rt-01 learns the node routes",
        Duration::from_secs(15),
        || {
            let r = rt_rib(&rt)?;
            let both = r.get("172.17.254.1/32").is_some_and(|p| p.len() == 2);
            Ok(
                (both && r.contains_key("10.244.1.0/24") && r.contains_key("10.244.2.0/24"))
                    .then_some(r),
            )
        },
    )
    .context("rt-01 did not learn the node routes")?;
    let mut hops: Vec<&str> = rt_rib["172.17.254.1/32"]
        .iter()
        .map(|(nh, _)| nh.as_str())
        .collect();
    hops.sort();
    assert_eq!(hops, ["172.17.0.21", "172.17.0.22"]);
    assert!(
        rt_rib["172.17.254.1/32"]
            .iter()
            .all(|(_, path)| path == &[64522])
    );
    assert!(
        !rt_rib.contains_key("192.0.2.0/24"),
        "import policy let 192.0.2.0/24 in"
    );
    assert!(
        !rt_rib.contains_key("172.17.254.0/24"),
        "import policy let a non-/32 pool route in"
    );

    // 4. node-02 learns node-01's pod CIDR, next hop rt-01, with node-01's AS replaced so it
    //    is not dropped as a loop; it does not get Service /32s or refused routes back.
    let n2_rib = wait_for(
        "node-02 learns 10.244.1.0/24",
        Duration::from_secs(15),
        || {
            let r = by_prefix(n2.rib(Family::V4)?);
            Ok(r.contains_key("10.244.1.0/24").then_some(r))
        },
    )
    .with_context(|| {
        format!(
            "node-02 never learned 10.244.1.0/24; rt-01 log:\n{}",
            rt_daemon.log_tail(LOG_LINES)
        )
    })?;
    let learned = &n2_rib["10.244.1.0/24"];
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0].0, "172.17.0.1");
    assert!(
        !learned[0].1.contains(&64522),
        "AS path {:?} still has the cluster AS",
        learned[0].1
    );
    // Give the router a moment to (wrongly) send more, then check nothing else arrived.
    std::thread::sleep(Duration::from_millis(500));
    let n2_rib = by_prefix(n2.rib(Family::V4)?);
    let learned_from_rt: BTreeSet<&str> = n2_rib
        .iter()
        .filter(|(_, paths)| paths.iter().any(|(nh, _)| nh == "172.17.0.1"))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        learned_from_rt,
        BTreeSet::from(["10.244.1.0/24"]),
        "node-02 RIB: {n2_rib:?}"
    );

    // Stops the daemons and deletes the namespaces; a failure to clean up fails the test.
    lab.teardown()?;
    Ok(())
}
