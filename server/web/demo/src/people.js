// people.js - the presence list: one row per person in the room (you first),
// an initials avatar in their colour, and what they are doing (typing in the
// chat, editing, idle).
import { avatar } from './identity.js';

/**
 * @param {HTMLElement} list  the <ul>
 * @param {HTMLElement} count the badge with the number of people
 * @param {Array<{key:string,user:string,name:string,color:string,me?:boolean,typing?:boolean,editing?:boolean}>} people
 */
export function renderPeople(list, count, people) {
  const sorted = [...people].sort((a, b) => (b.me ? 1 : 0) - (a.me ? 1 : 0) || a.name.localeCompare(b.name));
  list.replaceChildren(...sorted.map((p) => {
    const li = document.createElement('li');
    li.className = 'person' + (p.typing ? ' typing' : '') + (p.me ? ' me' : '');
    li.dataset.user = p.user;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = p.me ? `${p.name} (you)` : p.name;
    const status = document.createElement('span');
    status.className = 'status';
    status.textContent = p.typing ? 'typing…' : p.editing ? 'editing' : '';
    li.append(avatar(p.name, p.color), name, status);
    return li;
  }));
  count.textContent = String(sorted.length);
}
